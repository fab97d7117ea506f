"""The only code that talks to site databases (PostgreSQL, SQLite)."""

from .base import (
    PostgresSource,
    Source,
    SourceColumn,
    SqliteSource,
    TableSchema,
    fingerprint,
    normalise,
    open_source,
)

__all__ = [
    "PostgresSource",
    "Source",
    "SourceColumn",
    "SqliteSource",
    "TableSchema",
    "fingerprint",
    "normalise",
    "open_source",
]
