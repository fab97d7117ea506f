"""PostgreSQL sites: psycopg for checks, schemas and fingerprints; connectorx for the reads."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg

from ..config import TableConfig
from ..errors import SourceError
from .base import (
    CONNECT_TIMEOUT_S,
    FINGERPRINTING,
    Source,
    SourceColumn,
    TableSchema,
    fingerprint,
    quote,
    scrub,
)

__all__ = ["SOURCE", "PostgresSource"]


class PostgresSource(Source):
    _session: psycopg.Connection | None = None
    _driver_errors = (psycopg.Error,)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        # A connection costs a round trip and authentication: ~10 ms each, per query
        # and per day of a --full-check otherwise.
        with self._connect() as conn:
            self._session = conn
            try:
                yield
            finally:
                self._session = None

    @contextlib.contextmanager
    def _connect(self, where: str = "") -> Iterator[psycopg.Connection]:
        if self._session is not None:
            yield self._session
            return
        try:
            conn = psycopg.connect(
                self.site.dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True
            )
        except psycopg.Error as exc:
            raise SourceError(
                f"{where or self.where(None)}: cannot connect to PostgreSQL: "
                f"{scrub(str(exc), self.site.dsn)}; check the DSN's host, port, user and "
                "password"
            ) from None
        with conn:
            yield conn

    def check(self) -> None:
        with self._connect() as conn, self._faults(None, "checking the connection"):
            conn.execute("SELECT 1")

    @contextlib.contextmanager
    def _watch(self, schema: TableSchema, day: str) -> Iterator[Callable[[], None]]:
        # connectorx's pool retries a server that is gone for 30 s (r2d2's connection
        # timeout, which connectorx does not expose) before it fails; a round trip on a
        # connection of our own finds out in milliseconds.
        with self._connect(self.where(schema.table, day)) as conn:

            def alive() -> None:
                with self._faults(schema.table, "read", day):
                    conn.execute("SELECT 1")

            yield alive

    def _describe(self, table: TableConfig) -> list[tuple[str, str, bool]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT column_name, data_type, is_nullable = 'YES' "
                "FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                (table.source,),
            ).fetchall()
        return [(name, kind.lower(), nullable) for name, kind, nullable in rows]

    def _scalar_row(self, sql: str) -> tuple:
        with self._connect() as conn:
            return conn.execute(sql).fetchone()

    def _literal(self, schema: TableSchema, instant: datetime) -> str:
        if schema.naive_timestamp:
            local = instant.astimezone(self.zone).replace(tzinfo=None)
            return f"'{local.isoformat(sep=' ')}'::timestamp"
        return f"'{instant.astimezone(UTC).isoformat(sep=' ')}'::timestamptz"

    def _parse_bound(self, schema: TableSchema, value: object) -> datetime:
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return value.astimezone(UTC)

    def fingerprints(self, schema: TableSchema) -> dict[str, dict[str, object]]:
        # One pass over the table; the checksum sees every column of every row, so an update
        # in place or a delete + insert that keeps the count still changes it.
        ts, table = quote(schema.timestamp.source), quote(schema.table.source)
        local = f"{ts}::date" if schema.naive_timestamp else f"({ts} AT TIME ZONE %s)::date"
        sql = (
            f"SELECT {local} AS day, COUNT(*), MIN({ts}), MAX({ts}), "
            f"SUM(hashtextextended(t::text, 0))::text FROM {table} AS t GROUP BY 1"
        )
        with self._connect() as conn, self._faults(schema.table, FINGERPRINTING):
            rows = conn.execute(sql, () if schema.naive_timestamp else (self.site.timezone,))
            return {
                day.isoformat(): fingerprint(
                    n, self._parse_bound(schema, low), self._parse_bound(schema, high), checksum
                )
                for day, n, low, high, checksum in rows.fetchall()
            }

    def _order_by(self, column: SourceColumn) -> str:
        # Byte order for text whatever the database's collation; json has no order of its own.
        if column.type == "string":
            return f'{quote(column.source)}::text COLLATE "C" NULLS LAST'
        return super()._order_by(column)

    def _naive_zone(self) -> str:
        return self.site.timezone  # as the old service read them

    def _cx_dsn(self) -> str:
        # connectorx wants the "postgresql" scheme; "postgres://" is an accepted alias elsewhere.
        return re.sub(r"^postgres://", "postgresql://", self.site.dsn)


SOURCE = PostgresSource
