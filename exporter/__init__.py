"""ess-export: publish ESS operating data as daily CSV + Parquet files with manifests.

The public API (also what the CLI calls)::

    config = exporter.load("config/sites.toml")
    exporter.make_plan(config, "./public")            # what a run would export
    exporter.run(config, target="./public")           # export and publish
    exporter.verify(exporter.open_target("./public"))  # re-hash against the manifests
    exporter.build_site(exporter.open_target("./public"))
    exporter.Dataset.open("./public").sql("SELECT ...")  # a pyarrow.Table
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config, load
from .errors import ConfigError, ExportError, LockHeld, PublishError, QueryError, SourceError
from .storage import open_target

if TYPE_CHECKING:
    from .pipeline import RunReport, make_plan, run
    from .query import Dataset
    from .site import build_site
    from .verification import verify

__all__ = [
    "Config",
    "ConfigError",
    "Dataset",
    "ExportError",
    "LockHeld",
    "PublishError",
    "QueryError",
    "RunReport",
    "SourceError",
    "build_site",
    "load",
    "make_plan",
    "open_target",
    "run",
    "verify",
]

# The export stack (connectorx, psycopg, jinja2) and the query stack (DuckDB) load on first
# use, so that each pays only for itself.
_LAZY = {
    "RunReport": "pipeline",
    "make_plan": "pipeline",
    "run": "pipeline",
    "verify": "verification",
    "Dataset": "query",
    "build_site": "site",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
