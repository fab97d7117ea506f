"""The exceptions ess-export raises for expected failures.

Each class knows the process exit code the CLI maps it to::

    ExportError              1  a run failed (source, write or publish)
    ├── ConfigError          2  the config file or a command-line value is wrong
    ├── SourceError          1  a database could not be read
    ├── PublishError         1  the target could not be written or read back
    ├── LockHeld             3  another run holds the site's lease
    └── QueryError           2  a query value (site, table, field, time, page, SQL) is wrong

Messages are one line, name the file/key/site/table/day or value at fault, say how to fix
it, and never carry a secret (DSN, password).
"""

from __future__ import annotations

__all__ = ["ConfigError", "ExportError", "LockHeld", "PublishError", "QueryError", "SourceError"]


class ExportError(Exception):
    """Base class: an expected failure, reported in one line without a traceback."""

    exit_code = 1
    report: object | None = None
    """Set by `pipeline.run` when a run fails: its `RunReport` so far (for `--report`)."""


class ConfigError(ExportError):
    """Bad configuration or command-line value: the user must change the input."""

    exit_code = 2


class SourceError(ExportError):
    """A site database could not be reached or read."""


class PublishError(ExportError):
    """The target could not be written, read back or verified."""


class LockHeld(ExportError):
    """Another run is publishing the same site."""

    exit_code = 3


class QueryError(ExportError):
    """A bad query value (site, table, field, time, page, SQL): the user must change it."""

    exit_code = 2
