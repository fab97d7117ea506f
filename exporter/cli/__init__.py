"""The `ess-export` command line: parse options, call one library function, print.

This package is the only part of exporter that imports click. Each command imports the
library it calls inside itself, so that a command loads only what it uses.
"""

from __future__ import annotations

from .api import api_command
from .base import main
from .demo import demo_command
from .export import plan_command, run_command
from .query import query_command, sql_command
from .site import serve_command, site_command
from .verify import verify_command

__all__ = ["main"]

for _command in (
    run_command,
    verify_command,
    plan_command,
    demo_command,
    site_command,
    serve_command,
    api_command,
    query_command,
    sql_command,
):
    main.add_command(_command)
