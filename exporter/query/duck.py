"""DuckDB basics the query modules share: the default connection, SQL quoting, its errors."""

from __future__ import annotations

import duckdb
import pyarrow as pa

__all__ = ["DUCKDB_ERRORS", "connect", "first_line", "quote", "sql_string"]

# DuckDB raises its own errors; through an Arrow stream they arrive as OSError/ArrowException.
DUCKDB_ERRORS = (duckdb.Error, OSError, pa.ArrowException)


def connect() -> duckdb.DuckDBPyConnection:
    """The default DuckDB connection: in memory, never installing or auto-loading extensions."""
    return duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
