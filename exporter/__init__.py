"""ess-export: publish ESS operating data as daily CSV + Parquet files with manifests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config, load
from .errors import ConfigError, ExportError, LockHeld, PublishError, SourceError

if TYPE_CHECKING:
    from .pipeline import RunReport, make_plan, run

__all__ = [
    "Config",
    "ConfigError",
    "ExportError",
    "LockHeld",
    "PublishError",
    "RunReport",
    "SourceError",
    "load",
    "make_plan",
    "run",
]


def __getattr__(name: str) -> Any:
    # The export stack (connectorx, psycopg, jinja2) loads on first use, so that reading
    # the published files (exporter.query) does not pay for it.
    if name in ("RunReport", "make_plan", "run"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
