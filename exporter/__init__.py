"""ess-export: publish ESS operating data as daily CSV + Parquet files with manifests."""

from .config import Config, load
from .errors import ConfigError, ExportError, LockHeld, PublishError, SourceError
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
