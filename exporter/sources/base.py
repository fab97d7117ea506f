"""The only code that talks to site databases.

connectorx does the bulk reads (straight into Arrow); the plain drivers (psycopg, sqlite3)
check the connection first with a short timeout, discover schemas and find extents, because
connectorx retries a bad connection for ~30 s and prints pool noise before it fails.

Timestamps come out as UTC instants. A column without a zone is read as the site's local
time in PostgreSQL (like the old service) and as UTC in SQLite (SQLite's own convention).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from ..config import SiteConfig, TableConfig
from ..errors import SourceError


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


cx = _import_connectorx()

__all__ = [
    "Source",
    "SourceColumn",
    "TableSchema",
    "fingerprint",
    "normalise",
    "open_source",
]

CONNECT_TIMEOUT_S = 5
FINGERPRINTING = "fingerprinting its days"
SLICES_PER_DAY = 6  # a partition is read in this many time slices, prefetched
# Slices read at once: one read alone left a core idle (a day: 1.79 s instead of 2.13 s).
READS_AHEAD = 2
WATCH_S = 1.0  # while a slice is read, how often the server is checked to be there

# Source type name (lower case, without length/precision) -> published logical type.
_TYPES = {
    "timestamp with time zone": "timestamp",
    "timestamptz": "timestamp",
    "timestamp without time zone": "timestamp",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "date": "date",
    "smallint": "integer",
    "integer": "integer",
    "int": "integer",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "bigint": "integer",
    "real": "float",
    "double precision": "float",
    "float": "float",
    "float4": "float",
    "float8": "float",
    "double": "float",
    "numeric": "float",
    "boolean": "boolean",
    "bool": "boolean",
    "text": "string",
    "character varying": "string",
    "varchar": "string",
    "character": "string",
    "char": "string",
    "json": "string",
    "jsonb": "string",
    "uuid": "string",
}
_ARROW = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class SourceColumn:
    name: str
    """Normalised, published name (``rack_status_for_online``)."""
    source: str
    """Name in the database, exactly (``RACK_STATUS_FOR_Online``)."""
    type: str
    """Published logical type: timestamp, integer, float, string, boolean or date."""
    source_type: str
    nullable: bool


@dataclass(frozen=True)
class TableSchema:
    table: TableConfig
    columns: tuple[SourceColumn, ...]
    """Exported columns: timestamp first, then keys, then the rest in source order."""
    naive_timestamp: bool
    """True when the source timestamp column carries no zone."""

    @property
    def timestamp(self) -> SourceColumn:
        return self.columns[0]

    @property
    def keys(self) -> tuple[SourceColumn, ...]:
        return self.columns[1 : 1 + len(self.table.keys)]


def fingerprint(
    rows: int, first: datetime, last: datetime, checksum: str | None = None
) -> dict[str, object]:
    """What identifies a day's source content, as stored in the manifest."""
    found: dict[str, object] = {
        "rows": rows,
        "min": first.astimezone(UTC).isoformat(),
        "max": last.astimezone(UTC).isoformat(),
    }
    if checksum is not None:
        found["checksum"] = checksum
    return found


def normalise(name: str) -> str:
    """Published column name: lower case, runs of other characters folded to ``_``."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "column"


def _quote(identifier: str) -> str:
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


def _scrub(message: str, dsn: str) -> str:
    """First line of a driver message, with any trace of the password removed."""
    line = (message.strip().splitlines() or ["unknown error"])[0]
    with contextlib.suppress(ValueError):
        password = urlsplit(dsn).password
        if password:
            line = line.replace(password, "***")
    return line


class Source(ABC):
    """One site's database. Use `open_source`; call `check` before anything else."""

    kind = ""

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
        message = _scrub(str(exc), self.site.dsn)
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
            kind = _TYPES.get(re.sub(r"\(.*\)", "", source_type).strip(), "string")
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
        ts = _quote(schema.timestamp.source)
        with self._faults(schema.table, "finding its first and last day"):
            low, high = self._scalar_row(
                f"SELECT MIN({ts}), MAX({ts}) FROM {_quote(schema.table.source)}"
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
        ts, table = _quote(schema.timestamp.source), _quote(schema.table.source)
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
        columns = ", ".join(f"{_quote(c.source)} AS {_quote(c.name)}" for c in schema.columns)
        order = ", ".join(self._order_by(c) for c in schema.columns)
        ts = _quote(schema.timestamp.source)
        return (
            f"SELECT {columns} FROM {_quote(schema.table.source)} "
            f"WHERE {ts} >= {self._literal(schema, start)} AND {ts} < {self._literal(schema, end)} "
            f"ORDER BY {order}"
        )

    def _order_by(self, column: SourceColumn) -> str:
        return f"{_quote(column.source)} NULLS LAST"

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
            table = cx.read_sql(
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
            elif column.type in _ARROW and array.type != _ARROW[column.type]:
                array = array.cast(_ARROW[column.type])
            arrays.append(array)
        return pa.table(arrays, names=[c.name for c in schema.columns])

    def _instants(self, schema: TableSchema, array: pa.ChunkedArray) -> pa.ChunkedArray:
        if getattr(array.type, "tz", None) is None:
            zone = (
                self.site.timezone if schema.naive_timestamp and self.kind == "postgres" else "UTC"
            )
            array = pc.assume_timezone(array, zone, ambiguous="earliest", nonexistent="earliest")
        return array.cast(pa.timestamp("us", tz="UTC"))


class PostgresSource(Source):
    kind = "postgres"
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
                f"{_scrub(str(exc), self.site.dsn)}; check the DSN's host, port, user and "
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
        ts, table = _quote(schema.timestamp.source), _quote(schema.table.source)
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
            return f'{_quote(column.source)}::text COLLATE "C" NULLS LAST'
        return super()._order_by(column)

    def _cx_dsn(self) -> str:
        # connectorx wants the "postgresql" scheme; "postgres://" is an accepted alias elsewhere.
        return re.sub(r"^postgres://", "postgresql://", self.site.dsn)


class SqliteSource(Source):
    kind = "sqlite"
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

    def check(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT 1")

    def _describe(self, table: TableConfig) -> list[tuple[str, str, bool]]:
        with self._connect() as conn:
            rows = conn.execute(f"PRAGMA table_info({_quote(table.source)})").fetchall()
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
                    f"SELECT {_quote(column.source)} FROM {_quote(schema.table.source)} "
                    f"WHERE {_quote(schema.timestamp.source)} >= {self._literal(schema, start)} "
                    f"AND {_quote(schema.timestamp.source)} < {self._literal(schema, end)}"
                ).fetchall()
            bad = next(
                (v for (v,) in rows if v is not None and not self._FORMAT.match(str(v))), None
            )
            if bad is not None:
                return self._bad_timestamp(schema, column, str(bad), day)
        return super()._read_error(schema, day, start, end, exc)


def open_source(site: SiteConfig) -> Source:
    """The source for a site's DSN (validated by config.load)."""
    if site.dsn.startswith("sqlite:"):
        return SqliteSource(site)
    return PostgresSource(site)
