"""SQLite sites (the demo databases): sqlite3 for checks and schemas; connectorx for the reads."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from ..config import TableConfig
from ..errors import SourceError
from .base import Source, SourceColumn, TableSchema, quote

__all__ = ["SOURCE", "SqliteSource"]


class SqliteSource(Source):
    _FORMAT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$")

    @property
    def path(self) -> Path:
        return Path(urlsplit(self.site.dsn).path)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.path.is_file():
            raise SourceError(
                f"site {self.site.id}: SQLite file {self.path} not found; run "
                "'ess-export demo' to create the demo databases, or fix the DSN"
            )
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise SourceError(f"site {self.site.id}: SQLite error in {self.path}: {exc}") from None
        finally:
            conn.close()

    def _naive_zone(self) -> str:
        return "UTC"  # SQLite's own convention (its datetime functions assume it)

    def check(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT 1")

    def _describe(self, table: TableConfig) -> list[tuple[str, str, bool]]:
        with self._connect() as conn:
            rows = conn.execute(f"PRAGMA table_info({quote(table.source)})").fetchall()
        return [(r[1], (r[2] or "text").lower(), not r[3]) for r in rows]

    def _scalar_row(self, sql: str) -> tuple:
        with self._connect() as conn:
            return conn.execute(sql).fetchone()

    def _literal(self, schema: TableSchema, instant: datetime) -> str:
        return f"'{instant.astimezone(UTC).replace(tzinfo=None).isoformat(sep=' ')}'"

    def _parse_bound(self, schema: TableSchema, value: object) -> datetime:
        text = str(value)
        if not self._FORMAT.match(text):
            raise self._bad_timestamp(schema, schema.timestamp, text)
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    def _bad_timestamp(
        self, schema: TableSchema, column: SourceColumn, value: str, day: str = ""
    ) -> SourceError:
        return SourceError(
            f"{self.where(schema.table)}, column {column.source}{', day ' if day else ''}{day}: "
            f"cannot convert {value!r} to a timestamp; store one format, UTC "
            "'YYYY-MM-DD HH:MM:SS[.ffffff]'"
        )

    def _read_error(
        self, schema: TableSchema, day: str, start: datetime, end: datetime, exc: Exception
    ) -> SourceError:
        # Name the first value the driver could not convert, instead of its raw message.
        for column in schema.columns:
            if column.type != "timestamp":
                continue
            with self._connect() as conn:
                rows = conn.execute(
                    f"SELECT {quote(column.source)} FROM {quote(schema.table.source)} "
                    f"WHERE {quote(schema.timestamp.source)} >= {self._literal(schema, start)} "
                    f"AND {quote(schema.timestamp.source)} < {self._literal(schema, end)}"
                ).fetchall()
            bad = next(
                (v for (v,) in rows if v is not None and not self._FORMAT.match(str(v))), None
            )
            if bad is not None:
                return self._bad_timestamp(schema, column, str(bad), day)
        return super()._read_error(schema, day, start, end, exc)


SOURCE = SqliteSource
