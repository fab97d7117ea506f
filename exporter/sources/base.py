"""The engine-independent part of a site database: schema checks, extents, fingerprints, reads.

connectorx does the bulk reads (straight into Arrow); each engine's module (postgres,
sqlite) checks the connection first with its plain driver and a short timeout, discovers
schemas and finds extents, because connectorx retries a bad connection for ~30 s and
prints pool noise before it fails.

Timestamps come out as UTC instants. A column without a zone is read as the site's local
time in PostgreSQL (like the old service) and as UTC in SQLite (SQLite's own convention):
each engine says which in `_naive_zone`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from ..config import SiteConfig, TableConfig
from ..errors import SourceError
from .schema import ARROW, SourceColumn, TableSchema, fingerprint, normalise, published_type


@functools.cache
def _import_connectorx():  # type: ignore[no-untyped-def]
    """connectorx, with its Rust log off unless RUST_LOG asks for it.

    Its connection pool (r2d2) logs every failed connect as an ERROR line on stderr while it
    retries; our one-line error says it all. The logger reads RUST_LOG once, at import, so
    the variable is set only around the import (and not passed on to child processes).
    """
    if "RUST_LOG" in os.environ:
        import connectorx

        return connectorx
    os.environ["RUST_LOG"] = "off"
    try:
        import connectorx
    finally:
        del os.environ["RUST_LOG"]
    return connectorx


__all__ = [
    "CONNECT_TIMEOUT_S",
    "FINGERPRINTING",
    "Source",
    "SourceColumn",
    "TableSchema",
    "fingerprint",
    "normalise",
    "quote",
    "scrub",
]

CONNECT_TIMEOUT_S = 5
FINGERPRINTING = "fingerprinting its days"
SLICES_PER_DAY = 6  # a partition is read in this many time slices, prefetched
# Slices read at once: one read alone left a core idle (a day: 1.79 s instead of 2.13 s).
READS_AHEAD = 2
WATCH_S = 1.0  # while a slice is read, how often the server is checked to be there


def quote(identifier: str) -> str:
    """An SQL identifier, quoted (names come from the config and the catalog)."""
    return '"' + identifier.replace('"', '""') + '"'


# A driver message that means the server went away (or never answered).
_LOST = re.compile(r"connect|server closed|terminat", re.IGNORECASE)


def _in_background(work: Callable[..., pa.Table | Exception], *args: object) -> Future:
    """`work(*args)` on a daemon thread: its Future's result is its return value."""
    future: Future[pa.Table | Exception] = Future()

    def run() -> None:
        try:
            future.set_result(work(*args))
        except BaseException as exc:  # handed to the thread that waits for it
            future.set_exception(exc)

    threading.Thread(target=run, name="extract", daemon=True).start()
    return future


def scrub(message: str, dsn: str) -> str:
    """First line of a driver message, with any trace of the password removed."""
    line = (message.strip().splitlines() or ["unknown error"])[0]
    with contextlib.suppress(ValueError):
        password = urlsplit(dsn).password
        if password:
            line = line.replace(password, "***")
    return line


class Source(ABC):
    """One site's database. Use `open_source`; call `check` before anything else."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.zone = ZoneInfo(site.timezone)

    def where(self, table: TableConfig | None, day: str = "") -> str:
        """Names the site, table and day at fault, as every error line begins."""
        found = f"site {self.site.id}"
        found += f", table {table.name}" if table else ""
        return found + (f", day {day}" if day else "")

    def fault(self, where: str, doing: str, exc: BaseException) -> SourceError:
        """One line for a driver error: what was being done, the driver's words without
        the password, and what to do about it."""
        message = scrub(str(exc), self.site.dsn)
        if "statement timeout" in message:
            return SourceError(
                f"{where}: {doing} was cancelled by the server's statement_timeout (set in "
                "the DSN's options or for the database user?); raise or unset it for the "
                "export's user"
            )
        hint = "; check that the database is up, then run again" if _LOST.search(message) else ""
        return SourceError(f"{where}: {doing} failed: {message}{hint}")

    _driver_errors: tuple[type[Exception], ...] = ()
    """The engine driver's exception classes, turned into SourceError by `_faults`."""

    @contextlib.contextmanager
    def _faults(self, table: TableConfig | None, doing: str, day: str = "") -> Iterator[None]:
        try:
            yield
        except self._driver_errors as exc:
            raise self.fault(self.where(table, day), doing, exc) from None

    # -- implemented per engine ------------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Connect once with a short timeout; raise SourceError in one line if that fails."""

    @abstractmethod
    def _describe(self, table: TableConfig) -> list[tuple[str, str, bool]]:
        """(name, lower-case type name, nullable) per column, in source order; [] if absent."""

    @abstractmethod
    def _scalar_row(self, sql: str) -> tuple:
        """The first row of a small query."""

    @abstractmethod
    def _literal(self, schema: TableSchema, instant: datetime) -> str:
        """An SQL literal comparable with the timestamp column (we build it, never the user)."""

    @abstractmethod
    def _parse_bound(self, schema: TableSchema, value: object) -> datetime:
        """A MIN/MAX value of the timestamp column as a UTC instant."""

    @abstractmethod
    def _naive_zone(self) -> str:
        """The zone a timestamp column stored without one is read in."""

    def _cx_dsn(self) -> str:
        return self.site.dsn

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Within this block the small queries (check, schema, extent, fingerprints) may
        share one connection; engines where connecting costs something override it."""
        yield

    # -- shared ---------------------------------------------------------------------------
    def schema(self, table: TableConfig) -> TableSchema:
        """The exported columns of `table`, checked against the config."""
        with self._faults(table, "reading its columns"):
            described = self._describe(table)
        if not described:
            raise SourceError(
                f"{self.where(table)}: source table {table.source!r} not found; check "
                f"sites.{self.site.id}.tables.{table.name}.source in the config"
            )
        by_name = {name: (kind, nullable) for name, kind, nullable in described}
        for key, names in (
            ("timestamp", (table.timestamp,)),
            ("keys", table.keys),
            ("include", table.include),
            ("exclude", table.exclude),
        ):
            missing = [n for n in names if n not in by_name]
            if missing:
                raise SourceError(
                    f"{self.where(table)}: column {missing[0]!r} named in "
                    f"sites.{self.site.id}.tables.{table.name}.{key} does not exist; "
                    f"columns are: {', '.join(by_name)}"
                )
        fixed = (table.timestamp, *table.keys)
        rest = [
            n
            for n, _, _ in described
            if n not in fixed
            and n not in table.exclude
            and (not table.include or n in table.include)
        ]
        columns = []
        for name in (*fixed, *rest):
            source_type, nullable = by_name[name]
            kind = published_type(source_type)
            columns.append(SourceColumn(normalise(name), name, kind, source_type, nullable))
        if columns[0].type != "timestamp":
            raise SourceError(
                f"{self.where(table)}: column {table.timestamp!r} is {columns[0].source_type}, "
                "not a timestamp; set sites.<id>.tables.<name>.timestamp"
            )
        seen: dict[str, str] = {}
        for column in columns:
            if column.name in seen:
                raise SourceError(
                    f"{self.where(table)}: columns {seen[column.name]!r} and {column.source!r} "
                    f"both normalise to {column.name!r}; exclude one of them"
                )
            seen[column.name] = column.source
        naive = "without" in columns[0].source_type or columns[0].source_type in (
            "timestamp",
            "datetime",
        )
        return TableSchema(table, tuple(columns), naive)

    def extent(self, schema: TableSchema) -> tuple[datetime, datetime] | None:
        """First and last instant in the table, or None when it is empty."""
        ts = quote(schema.timestamp.source)
        with self._faults(schema.table, "finding its first and last day"):
            low, high = self._scalar_row(
                f"SELECT MIN({ts}), MAX({ts}) FROM {quote(schema.table.source)}"
            )
        if low is None:
            return None
        return self._parse_bound(schema, low), self._parse_bound(schema, high)

    def fingerprints(self, schema: TableSchema) -> dict[str, dict[str, object]]:
        """Per local day: rows, first and last instant, and a content checksum if the engine
        offers one. Compared with the manifest by --full-check to find changed days."""
        extent = self.extent(schema)
        if extent is None:
            return {}
        ts, table = quote(schema.timestamp.source), quote(schema.table.source)
        day, last = extent[0].astimezone(self.zone).date(), extent[1].astimezone(self.zone).date()
        found = {}
        while day <= last:
            start = datetime.combine(day, time(), self.zone)
            end = datetime.combine(day + timedelta(days=1), time(), self.zone)
            with self._faults(schema.table, FINGERPRINTING):
                rows, low, high = self._scalar_row(
                    f"SELECT COUNT(*), MIN({ts}), MAX({ts}) FROM {table} WHERE {ts} >= "
                    f"{self._literal(schema, start)} AND {ts} < {self._literal(schema, end)}"
                )
            if rows:
                found[day.isoformat()] = fingerprint(
                    rows, self._parse_bound(schema, low), self._parse_bound(schema, high)
                )
            day += timedelta(days=1)
        return found

    def select_sql(self, schema: TableSchema, start: datetime, end: datetime) -> str:
        """Rows in [start, end), every column aliased to its normalised name, in the
        published order: timestamp, keys, then every other column (so equal rows are
        neighbours and the same rows always come out in the same order)."""
        columns = ", ".join(f"{quote(c.source)} AS {quote(c.name)}" for c in schema.columns)
        order = ", ".join(self._order_by(c) for c in schema.columns)
        ts = quote(schema.timestamp.source)
        return (
            f"SELECT {columns} FROM {quote(schema.table.source)} "
            f"WHERE {ts} >= {self._literal(schema, start)} AND {ts} < {self._literal(schema, end)} "
            f"ORDER BY {order}"
        )

    def _order_by(self, column: SourceColumn) -> str:
        return f"{quote(column.source)} NULLS LAST"

    def stream(
        self, schema: TableSchema, start: datetime, end: datetime, day: str
    ) -> Iterator[pa.Table]:
        """Rows of one partition, in order, as Arrow tables with the published names/types.

        The day is read in consecutive time slices, two at a time on their own connections,
        while the caller encodes the one before: the server, the driver and the encoders
        keep both cores busy, and memory holds a few slices. (connectorx's own arrow_stream
        hangs when its connection is killed.)

        Each read runs on a daemon thread that nobody waits for once the day has failed:
        a read stuck in connectorx's pool retries (30 s when the server is gone) neither
        delays the error nor the process's exit. While waiting, `_watch`'s check runs every
        WATCH_S seconds, so a server that goes away fails the day within about that long.
        """
        _import_connectorx()  # here, not first in a reading thread
        cuts = [start + (end - start) * i / SLICES_PER_DAY for i in range(SLICES_PER_DAY + 1)]
        slices = deque(zip(cuts, cuts[1:], strict=False))
        with self._watch(schema, day) as alive:
            reading: deque[Future[pa.Table | Exception]] = deque()
            while slices or reading:
                while slices and len(reading) < READS_AHEAD:
                    alive()
                    reading.append(_in_background(self._read_slice, schema, *slices.popleft()))
                while True:
                    try:
                        result = reading[0].result(timeout=WATCH_S)
                        break
                    except TimeoutError:
                        alive()
                reading.popleft()
                yield self._checked(result, schema, day, start, end)

    @contextlib.contextmanager
    def _watch(self, schema: TableSchema, day: str) -> Iterator[Callable[[], None]]:
        """A check, run before and during each slice's read, that raises if the server is
        gone (engines whose bulk reader retries a lost server for long override it)."""
        yield lambda: None

    def _read_slice(
        self, schema: TableSchema, low: datetime, high: datetime
    ) -> pa.Table | Exception:
        try:
            table = _import_connectorx().read_sql(
                self._cx_dsn(), self.select_sql(schema, low, high), return_type="arrow"
            )
        except Exception as exc:  # connectorx raises bare RuntimeError/ValueError
            return exc
        return self._conform(schema, table)

    def _checked(
        self,
        result: pa.Table | Exception,
        schema: TableSchema,
        day: str,
        start: datetime,
        end: datetime,
    ) -> pa.Table:
        if isinstance(result, Exception):
            raise self._read_error(schema, day, start, end, result) from None
        return result

    def _read_error(
        self, schema: TableSchema, day: str, start: datetime, end: datetime, exc: Exception
    ) -> SourceError:
        return self.fault(self.where(schema.table, day), "read", exc)

    def _conform(self, schema: TableSchema, table: pa.Table) -> pa.Table:
        arrays = []
        for column, array in zip(schema.columns, table.columns, strict=True):
            if column.type == "timestamp":
                array = self._instants(schema, array)
            elif column.type in ARROW and array.type != ARROW[column.type]:
                array = array.cast(ARROW[column.type])
            arrays.append(array)
        return pa.table(arrays, names=[c.name for c in schema.columns])

    def _instants(self, schema: TableSchema, array: pa.ChunkedArray) -> pa.ChunkedArray:
        if getattr(array.type, "tz", None) is None:
            zone = self._naive_zone() if schema.naive_timestamp else "UTC"
            array = pc.assume_timezone(array, zone, ambiguous="earliest", nonexistent="earliest")
        return array.cast(pa.timestamp("us", tz="UTC"))
