"""Site databases: one module per engine, chosen by the DSN's scheme (`config.DSN_SCHEMES`).

    base       what every engine shares: schema checks, extents, fingerprints, sliced reads
    postgres   PostgreSQL (psycopg + connectorx)
    sqlite     SQLite files (sqlite3 + connectorx)

An engine's module imports only `base` (and `schema`) and names its class `SOURCE`.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from ..config import DSN_SCHEMES, SiteConfig
from ..errors import ConfigError
from .base import Source
from .schema import SourceColumn, TableSchema, fingerprint, normalise

__all__ = [
    "Source",
    "SourceColumn",
    "TableSchema",
    "fingerprint",
    "normalise",
    "open_source",
]


def open_source(site: SiteConfig) -> Source:
    """The source for a site's DSN (validated by config.load).

    The engine's module is imported here, on first use: a run over SQLite sites alone
    never loads the PostgreSQL driver."""
    scheme = urlsplit(site.dsn).scheme
    if scheme not in DSN_SCHEMES:
        raise ConfigError(
            f"site {site.id}: unsupported DSN scheme {scheme!r}; "
            f"use one of {', '.join(f'{s}:' for s in DSN_SCHEMES)}"
        )
    engine = importlib.import_module(f"{__name__}.{DSN_SCHEMES[scheme]}")
    return engine.SOURCE(site)
