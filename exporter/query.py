"""The query helper: the old API's questions, answered from the published files with DuckDB.

    dataset = Dataset.open("./public")          # or s3://bucket/prefix, https://host/base/
    page = dataset.query("1", "rack", bank=1, rack=1, fields="timestamp,rack_soc",
                         start="2022-09-01T10:00:00", end="2022-09-01T12:00:00", page=1)
    page.count, page.next, page.previous, page.rows   # rows: a polars DataFrame
    dataset.rows(...)                           # every matching row, streamed (CSV download)
    dataset.sql("SELECT site, avg(rack_soc) FROM rack GROUP BY site")

`query` and `rows` follow the old service: ISO 8601 times, a time without offset in the
site's zone, `end` inclusive, rows ordered by timestamp, the table's keys, then the selected
columns; pages of 100 from 1. They read the manifests first and open only the day files
whose [min_timestamp, max_timestamp] meets the range, and only the needed columns; a day
fully inside the range takes its row count from the manifest. SQL is built only from names
found in the manifest (quoted); values are bound parameters.

A remote root's files are fetched into a verified cache (`exporter.cache`) and read
locally: DuckDB gets no network access and never downloads an extension. Every query runs
in one DuckDB database per Dataset (`exporter.engine`) whose limits (time, memory, threads,
temporary files) and file access (the dataset's files only) are set and locked before any
SQL of the user's is seen; each thread uses its own cursor, so threads may share a Dataset.
`sql` parses the user's statement there, refuses all but one SELECT-like statement, and
runs it over views that are catalog objects of that database.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from .cache import ChecksumMismatch, FileCache, default_cache_dir, safe_parts
from .catalog import DamagedManifest, catalog_sites, read_manifest
from .engine import Deadline, Engine, Limits, referenced_names
from .errors import PublishError, QueryError
from .journal import Journal, peek_journal
from .layout import CATALOG_KEY, manifest_key
from .manifest import CSV_DATETIME_FORMAT, Partition, SiteManifest, TableManifest
from .storage import LocalTarget, Target, open_reader

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Dataset",
    "InvalidPage",
    "Limits",
    "Page",
    "QueryError",
    "connect",
    "head_frame",
    "page_json",
    "records_json",
    "render_table",
    "write_csv",
    "write_parquet",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
BATCH_ROWS = 65_536
# DuckDB raises its own errors; through an Arrow stream they arrive as OSError/ArrowException.
_DUCKDB_ERRORS = (duckdb.Error, OSError, pa.ArrowException)
# DuckDB opens a Parquet file more than once per query: a publish that swaps in a day's new
# file meanwhile makes the read fail (measured: 1 query in 5 while a file is replaced in a
# loop), though both versions are good. Such a read is tried again, this many times in all.
READ_ATTEMPTS = 4
# A manifest names one schema per table, but union_by_name costs little and keeps a
# table readable should two days ever differ.
_FILES = "read_parquet($files, union_by_name=true)"
_FILES_NAMED = "read_parquet($files, union_by_name=true, filename=true)"
_TOTAL = "__total"
_DUCKDB_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}
_ARROW_TYPES = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


class InvalidPage(QueryError):
    """The page asked for does not exist (not a number, below 1, past the end)."""


def connect() -> duckdb.DuckDBPyConnection:
    """The default DuckDB connection: in memory, never installing or auto-loading extensions."""
    return duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- request values -----------------------------------------------------------------------


def parse_time(value: str | datetime | date | None, zone: ZoneInfo, what: str) -> datetime | None:
    """An ISO 8601 time as an instant; without an offset it is the site's local time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise QueryError(
                f"{what} {value!r} is not an ISO 8601 time; use e.g. 2022-09-01T10:00:00 "
                "(the site's local time) or 2022-09-01T10:00:00+09:00"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise QueryError(
            f"{what} {value!s} is out of range: give a time from 0001-01-02 to 9999-12-30"
        ) from None


def _whole_number(value: object) -> int | None:
    """A positive whole number given as int or digits, else None ("1.0", "abc", True: None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value) or None
    return None


def parse_page_size(value: int | str | None, maximum: int = MAX_PAGE_SIZE) -> int:
    """The page size; over `maximum` is clamped, like the old service."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    size = _whole_number(value)
    if size is None:
        raise QueryError(
            f"Invalid page size {value!r}: give a whole number from 1 to {maximum} "
            f"(larger sizes are clamped to {maximum})"
        )
    return min(size, maximum)


def parse_page(value: int | str | None) -> int | str:
    """A requested page: a whole number from 1, or 'last' (None: the first page)."""
    if value is None:
        return 1
    if value == "last":
        return "last"
    number = _whole_number(value)
    if number is None:
        raise InvalidPage(
            f"Invalid page. {value!r} is not a page number: give a whole number from 1 (or 'last')"
        )
    return number


def _page_number(wanted: int | str, count: int, size: int) -> int:
    """The requested page checked against the result's page count."""
    pages = max(1, math.ceil(count / size))  # page 1 of an empty result is allowed
    if wanted == "last":
        return pages
    assert isinstance(wanted, int)
    if wanted > pages:
        raise InvalidPage(
            f"Invalid page. Page {wanted} is past the end: {count} row(s) make {pages} "
            f"page(s) of {size}"
        )
    return wanted


def _device_id(value: int | str | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    raise QueryError(f"{what} {value!r} is not a whole number; give e.g. --{what} 1")


def _check_fields(chosen: list[str], names: list[str], site: str, table: str) -> list[str]:
    for name in chosen:
        if name not in names:
            raise QueryError(
                f"unknown field {name!r} in table {table} of site {site}; "
                f"fields: {', '.join(names)}"
            )
    return chosen


def _device_column(what: str, names: list[str], site: str, table: str) -> str:
    column = f"{what}_id"
    if column not in names:
        raise QueryError(
            f"table {table} of site {site} has no {column} column, so it cannot be "
            f"filtered by {what}; leave out --{what}"
        )
    return column


def _field_list(fields: str | Sequence[str] | None) -> list[str]:
    if fields is None:
        return []
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    chosen = [f.strip().lower() for f in items if f.strip()]
    return list(dict.fromkeys(chosen))  # first mention wins, duplicates dropped


# --- pages and selections -----------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a query, with the old service's page-number links."""

    count: int
    page: int
    page_size: int
    next: int | None
    previous: int | None
    rows: pl.DataFrame
    """Timestamps are zone-aware in the site's zone."""

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.page_size))

    def to_arrow(self) -> pa.Table:
        return self.rows.to_arrow()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: count, next, previous, results (values as `page_json` writes)."""
        return {
            "count": self.count,
            "next": self.next,
            "previous": self.previous,
            "results": _json_records(self.rows),
        }


@dataclass(frozen=True)
class _Selection:
    """A checked request: what to read, from which days, in which order."""

    site: str
    table: str
    schema: pa.Schema
    """Output columns and their types."""
    order: tuple[str, ...]
    where: str
    params: dict[str, Any]
    partitions: tuple[Partition, ...]
    """The days that meet the range, in time order."""
    known_rows: tuple[int | None, ...]
    """Per partition: its row count when the manifest tells it (day inside the range)."""
    disjoint: bool
    """Partitions do not overlap in time, so a page can be read from the days it falls in."""
    file_order: bool = False
    """Every column, in the manifest's order: the order each file is written in."""
    descending: frozenset[str] = frozenset()
    """Order columns sorted high to low (the keys, for `descending_keys`)."""

    def select_sql(self, page: bool, total: bool = False, one_file: bool = False) -> str:
        columns = ", ".join(_q(name) for name in self.schema.names)
        if total:  # published names never start with "_" (see sources.normalise)
            columns += f", count(*) OVER () AS {_TOTAL}"
        order = ", ".join(
            f"{_q(name)} {'DESC' if name in self.descending else 'ASC'} NULLS LAST"
            for name in self.order
        )
        if not page and one_file and self.file_order and not self.descending:
            # A day's file is written in this order (the layout contract): no sort, so a
            # download holds a batch in memory, not the day.
            return f"SELECT {columns} FROM {_FILES} {self.where}"
        tail = " LIMIT $limit OFFSET $offset" if page else ""
        return f"SELECT {columns} FROM {_FILES} {self.where} ORDER BY {order}{tail}"

    def count_sql(self) -> str:
        return f"SELECT filename, count(*) FROM {_FILES_NAMED} {self.where} GROUP BY filename"

    def conform(self, table: pa.Table) -> pa.Table:
        return table.select(self.schema.names).cast(self.schema)


def _bounds(partition: Partition) -> tuple[datetime, datetime]:
    return (
        datetime.fromisoformat(partition.min_timestamp),
        datetime.fromisoformat(partition.max_timestamp),
    )


def _prune(
    table: TableManifest,
    start: datetime | None,
    end: datetime | None,
    filtered: bool,
    flux: dict[str, Partition] | None = None,
) -> tuple[tuple[Partition, ...], tuple[int | None, ...], bool]:
    """The partitions meeting [start, end], their known counts, and whether they are disjoint.

    A day in `flux` (its journal entry) may be read in either version: its bounds span
    both, and its rows are counted, not taken from either entry."""
    flux = flux or {}
    chosen, known = [], []
    for partition in sorted(table.partitions, key=lambda p: _bounds(p)[0]):
        if "parquet" not in partition.files:
            continue
        low, high = _bounds(partition)
        other = flux.get(partition.date)
        if other is not None:
            low, high = min(low, _bounds(other)[0]), max(high, _bounds(other)[1])
            filtered_day = True
        else:
            filtered_day = filtered
        if (start is not None and high < start) or (end is not None and low > end):
            continue
        inside = (start is None or start <= low) and (end is None or high <= end)
        chosen.append(partition)
        known.append(partition.rows if inside and not filtered_day else None)
    spans = [_bounds(p) for p in chosen]
    disjoint = all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    return tuple(chosen), tuple(known), disjoint


class _Stale(Exception):
    """A file's manifest entry changed during the query: resolve again from the new one."""


# --- the dataset --------------------------------------------------------------------------


class Dataset:
    """A published root, read through its catalog and site manifests.

    Safe to share between threads: each thread queries on its own DuckDB cursor, and
    fetching into the cache takes turns.
    """

    def __init__(
        self,
        target: Target,
        manifests: dict[str, SiteManifest],
        *,
        connect: Callable[[], duckdb.DuckDBPyConnection] = connect,
        cache: FileCache | None = None,
        journals: dict[str, Journal] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.target = target
        self.manifests = manifests
        self.journals = journals or {}
        """Each site's publish journal, if a publish is under way (see the reader rule)."""
        self.damaged: dict[str, str] = {}
        """Sites listed by the catalog whose manifest cannot be read: why, and the fix."""
        self.cache = cache
        """None for a local directory, whose files are read in place."""
        self.limits = limits or Limits()
        self._connect = connect
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        # The manifest checks and the cache are not written for threads: one at a time.
        self._files_lock = threading.RLock()
        self._views_lock = threading.Lock()
        self._seen: dict[str, tuple[int, int, int]] = {}
        """Local files resolved so far, with their identity (inode, mtime, size): a read
        that fails after one of them changed is tried again (see READ_ATTEMPTS)."""
        self._real_views: set[str] | None = None
        """Views made over their files; None until the first `sql` makes the catalog."""

    @classmethod
    def open(
        cls,
        uri: str,
        *,
        target: Target | None = None,
        connect: Callable[[], duckdb.DuckDBPyConnection] = connect,
        cache_dir: str | Path | None = None,
        timeout: float | None = None,
        memory: str | None = None,
        threads: int | None = None,
        temp_limit: str | None = None,
    ) -> Dataset:
        """Open a directory, ``s3://bucket/prefix`` or ``http(s)://base/`` and read its manifests.

        `connect` makes the DuckDB database every query runs in; `cache_dir` overrides the
        cache of remote files (see `exporter.cache`), where temporary files also go.
        `timeout` (seconds), `memory` (e.g. "4GB"), `threads` and `temp_limit` bound each
        query (see `Limits` for the defaults).
        """
        target = target or open_reader(uri)
        cache = None if isinstance(target, LocalTarget) else FileCache(target.uri, cache_dir)
        manifests, journals, damaged = {}, {}, {}
        for site in _catalog_sites(target):
            try:
                manifest = read_manifest(target, site)
            except DamagedManifest as exc:
                damaged[site] = str(exc)  # the other sites stay readable
                continue
            if manifest is not None:
                manifests[site] = manifest
                journal = peek_journal(target, site)
                if journal is not None:
                    journals[site] = journal
        given = {"timeout": timeout, "memory": memory, "threads": threads}
        limits = Limits(
            **{k: v for k, v in given.items() if v is not None},
            **({"temp_limit": temp_limit} if temp_limit is not None else {}),
            temp_dir=Path(cache_dir) / "tmp" if cache_dir is not None else None,
        )
        dataset = cls(
            target, manifests, connect=connect, cache=cache, limits=limits, journals=journals
        )
        dataset.damaged = damaged
        return dataset

    def close(self) -> None:
        with self._engine_lock:
            if self._engine is not None:
                self._engine.close()
            self._engine, self._real_views = None, None

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- what there is -------------------------------------------------------------------

    def tables(self) -> dict[str, list[str]]:
        """Each site's tables: ``{"1": ["bank", "etc", "pcs", "rack"], ...}``."""
        return {site: sorted(m.tables) for site, m in sorted(self.manifests.items())}

    def columns(self, site: str, table: str) -> list[str]:
        """The table's published column names (see `table_manifest` for types and units)."""
        return [c.name for c in self.table_manifest(site, table).columns]

    def site_manifest(self, site: str) -> SiteManifest:
        if site in self.damaged:
            raise PublishError(self.damaged[site])
        if site not in self.manifests:
            choices = ", ".join(sorted(self.manifests)) or "none published"
            raise QueryError(f"unknown site {site!r}; sites: {choices}")
        return self.manifests[site]

    def table_manifest(self, site: str, table: str) -> TableManifest:
        tables = self.site_manifest(site).tables
        if table not in tables:
            raise QueryError(
                f"unknown table {table!r} for site {site}; tables: {', '.join(sorted(tables))}"
            )
        return tables[table]

    def zone(self, site: str) -> ZoneInfo:
        return ZoneInfo(self.site_manifest(site).timezone)

    # --- the old API ---------------------------------------------------------------------

    def query(
        self,
        site: str,
        table: str,
        bank: int | str | None = None,
        rack: int | str | None = None,
        fields: str | Sequence[str] | None = None,
        start: str | datetime | date | None = None,
        end: str | datetime | date | None = None,
        page: int | str | None = None,
        page_size: int | str | None = DEFAULT_PAGE_SIZE,
        *,
        max_page_size: int = MAX_PAGE_SIZE,
        descending_keys: bool = False,
    ) -> Page:
        """One page of the matching rows (page None: the first), like the old JSON API.

        `descending_keys` orders rows of one timestamp by the table's keys high to low
        (the seed service's physical order: racks 8 to 1 within a second).
        """
        request = (site, table, bank, rack, fields, start, end, descending_keys)
        size = parse_page_size(page_size, max_page_size)
        wanted = parse_page(page)
        deadline = self._deadline()  # one time budget for the whole question
        for attempt in range(READ_ATTEMPTS):
            selection = self._select(*request)
            try:
                return self._page(selection, wanted, size, attempt == 0, deadline)
            except _Stale:
                continue  # the manifest was re-read, or a file replaced: answer again
        raise PublishError(
            f"table {table} of site {site} was republished {READ_ATTEMPTS} times while it was "
            "read; ask again once the publish is done"
        )

    def rows(
        self,
        site: str,
        table: str,
        bank: int | str | None = None,
        rack: int | str | None = None,
        fields: str | Sequence[str] | None = None,
        start: str | datetime | date | None = None,
        end: str | datetime | date | None = None,
        *,
        descending_keys: bool = False,
    ) -> pa.RecordBatchReader:
        """Every matching row, in order, streamed one day at a time (the old CSV download)."""
        selection = self._select(site, table, bank, rack, fields, start, end, descending_keys)
        return pa.RecordBatchReader.from_batches(selection.schema, self._stream(selection))

    def _select(
        self,
        site: str,
        table: str,
        bank: int | str | None,
        rack: int | str | None,
        fields: str | Sequence[str] | None,
        start: str | datetime | date | None,
        end: str | datetime | date | None,
        descending_keys: bool = False,
    ) -> _Selection:
        manifest = self.table_manifest(site, table)
        zone = self.zone(site)
        names = [c.name for c in manifest.columns]
        chosen = _check_fields(_field_list(fields) or names, names, site, table)
        low, high = parse_time(start, zone, "start"), parse_time(end, zone, "end")
        if low is not None and high is not None and high < low:
            raise QueryError(
                f"end {end!s} is before start {start!s}; give an end at or after the start"
            )
        timestamp = manifest.columns[0].name
        clauses, params = [], {}
        for key, op, moment in (("start", ">=", low), ("end", "<=", high)):
            if moment is not None:
                clauses.append(f"{_q(timestamp)} {op} ${key}")
                params[key] = moment
        for what, value in (("bank", bank), ("rack", rack)):
            number = _device_id(value, what)
            if number is not None:
                clauses.append(f"{_q(_device_column(what, names, site, table))} = ${what}")
                params[what] = number
        keys = [k for k in manifest.keys if k in names]
        order = [timestamp, *keys, *(n for n in chosen if n != timestamp and n not in keys)]
        # A bank/rack filter makes the manifest's per-day counts useless.
        partitions, known, disjoint = _prune(
            manifest, low, high, "bank" in params or "rack" in params, self._in_flux(site, table)
        )
        return _Selection(
            site=site,
            table=table,
            schema=_schema(manifest, zone, chosen),
            order=tuple(order),
            where=("WHERE " + " AND ".join(clauses)) if clauses else "",
            params=params,
            partitions=partitions,
            known_rows=known,
            disjoint=disjoint,
            file_order=chosen == names,
            descending=frozenset(keys if descending_keys else ()),
        )

    def _page(
        self, selection: _Selection, page: int | str, size: int, reread: bool, deadline: Deadline
    ) -> Page:
        found = None
        if isinstance(page, int) and selection.known_rows == (None,):
            found = self._read_page_counted(selection, page, size, reread, deadline)
        if found is None:
            counts = self._counts(selection, reread, deadline)
            total = sum(counts)
            number = _page_number(page, total, size)
            # Not schema.empty_table(): that imports pandas (~0.4 s) on the first call.
            data = pa.Table.from_batches([], schema=selection.schema)
            if total:
                data = self._read_page(
                    selection, counts, (number - 1) * size, size, reread, deadline
                )
        else:
            data, total = found
            number = _page_number(page, total, size)
        rows = pl.from_arrow(data)
        assert isinstance(rows, pl.DataFrame)
        return Page(
            count=total,
            page=number,
            page_size=size,
            next=number + 1 if number * size < total else None,
            previous=number - 1 if number > 1 else None,
            rows=rows,
        )

    def _counts(self, selection: _Selection, reread: bool, deadline: Deadline) -> list[int]:
        """Matching rows per partition: from the manifest when it knows, else counted."""
        unknown = [
            p for p, n in zip(selection.partitions, selection.known_rows, strict=True) if n is None
        ]
        counted: dict[str, int] = {}
        if unknown:
            paths = self._local_paths(selection, unknown, reread)
            with self._reading(selection, deadline):
                by_path = dict(
                    deadline.cursor.execute(
                        selection.count_sql(), {**selection.params, "files": list(paths)}
                    ).fetchall()
                )
            counted = {p.date: by_path.get(path, 0) for path, p in paths.items()}
        return [
            n if n is not None else counted[p.date]
            for p, n in zip(selection.partitions, selection.known_rows, strict=True)
        ]

    def _read_page(
        self,
        selection: _Selection,
        counts: list[int],
        offset: int,
        size: int,
        reread: bool,
        deadline: Deadline,
    ) -> pa.Table:
        partitions = list(selection.partitions)
        if selection.disjoint:
            # Days do not overlap in time: read only the days this page falls in.
            partitions, offset = _page_partitions(partitions, counts, offset, size)
        paths = self._local_paths(selection, partitions, reread)
        params = {**selection.params, "files": list(paths), "limit": size, "offset": offset}
        with self._reading(selection, deadline):
            relation = deadline.cursor.sql(selection.select_sql(page=True), params=params)
            assert relation is not None
            return selection.conform(relation.to_arrow_table())

    def _read_page_counted(
        self, selection: _Selection, page: int, size: int, reread: bool, deadline: Deadline
    ) -> tuple[pa.Table, int] | None:
        """Rows and count from one scan of one day (the old API's usual question).

        None when the page is empty: the count alone then says whether it is allowed.
        """
        paths = self._local_paths(selection, selection.partitions, reread)
        params = {**selection.params, "files": list(paths), "limit": size}
        params["offset"] = (page - 1) * size
        with self._reading(selection, deadline):
            relation = deadline.cursor.sql(selection.select_sql(True, total=True), params=params)
            assert relation is not None
            table = relation.to_arrow_table()
        if table.num_rows == 0:
            return None
        total = table.column(_TOTAL)[0].as_py()
        return selection.conform(table.drop_columns([_TOTAL])), total

    def _stream(self, selection: _Selection) -> Iterator[pa.RecordBatch]:
        # Made here, on the thread that reads the stream: its cursor runs the queries.
        deadline = self._deadline()
        groups = (
            [[p] for p in selection.partitions] if selection.disjoint else [selection.partitions]
        )
        for group in groups:
            if not group:
                continue
            with self._files_lock:
                files = self._fresh_paths(selection.site, selection.table, group)
            params = {**selection.params, "files": files}
            with self._reading(selection, deadline):
                sql = selection.select_sql(page=False, one_file=len(files) == 1)
                relation = deadline.cursor.sql(sql, params=params)
                assert relation is not None
                reader = relation.to_arrow_reader(BATCH_ROWS)
            try:  # the budget counts DuckDB's time, not the reader's between batches
                while True:
                    with self._reading(selection, deadline):
                        batch = next(reader, None)
                    if batch is None:
                        break
                    yield from selection.conform(pa.Table.from_batches([batch])).to_batches()
            finally:
                reader.close()  # a stream stopped early leaves no open result on the cursor

    @contextlib.contextmanager
    def _reading(self, selection: _Selection, deadline: Deadline) -> Iterator[None]:
        """DuckDB failing on files that passed the manifest's checks: a damaged publish."""
        try:
            with deadline.running():
                yield
        except _DUCKDB_ERRORS as exc:
            limit = self._limit_error(exc, deadline)
            if limit is None and self._replaced():
                raise _Stale() from None  # a publish swapped a file in: read again
            raise limit or PublishError(
                f"cannot read table {selection.table} of site {selection.site}: "
                f"{_first_line(exc)}; run `ess-export verify --target {self.target.uri}`"
            ) from None

    def _limit_error(self, exc: Exception, deadline: Deadline) -> QueryError | None:
        found = self._limit_reason(exc, deadline)
        if found is not None:
            # A query stopped by a limit can leave a result open on its cursor (the budget
            # may run out just after DuckDB opened it): the thread's next query gets a new one.
            self._get_engine().discard_cursor()
        return found

    def _limit_reason(self, exc: Exception, deadline: Deadline) -> QueryError | None:
        """The one-line error for a query stopped by one of its limits, else None."""
        text = str(exc)
        limits = self.limits
        if deadline.expired and "Interrupt" in text:
            return QueryError(
                f"the query ran into its time limit of {limits.timeout:g} s and was stopped; "
                "narrow it, or raise the limit with --timeout SECONDS (Dataset.open(timeout=))"
            )
        if "max_temp_directory_size" in text:
            return QueryError(
                f"the query's temporary files reached their limit of {limits.temp_limit}; "
                "narrow it, or raise the limit with --temp-limit SIZE (Dataset.open(temp_limit=))"
            )
        if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory" in text:
            return QueryError(
                f"the query needs more than its memory limit of {limits.memory_value}; "
                "narrow it, or raise the limit with --memory SIZE, e.g. --memory 8GB "
                "(Dataset.open(memory=))"
            )
        return None

    # --- files ---------------------------------------------------------------------------

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor of the Dataset's database (see `exporter.engine`)."""
        return self._get_engine().cursor()

    def _deadline(self) -> Deadline:
        return self._get_engine().deadline()

    def _get_engine(self) -> Engine:
        """The database, made on first use: limited and locked before any query runs."""
        with self._engine_lock:
            if self._engine is None:
                zones = {m.timezone for m in self.manifests.values()}
                paths, directories = [], []
                if self.cache is None:
                    paths = self._published_paths()
                else:  # fetched files appear there later, each verified before it is read
                    directories = sorted({f"{self.cache.directory}/", _absolute_dir(self.cache)})
                self._engine = Engine(
                    self._connect(),
                    self.limits,
                    zone=zones.pop() if len(zones) == 1 else "UTC",
                    paths=paths,
                    directories=directories,
                    temp_base=default_cache_dir() / "tmp",
                )
            return self._engine

    def _published_paths(self) -> list[str]:
        """A directory root's Parquet files named by the manifests: all DuckDB may read."""
        paths = []
        for site, manifest in self.manifests.items():
            for table, entry in manifest.tables.items():
                for partition in entry.partitions:
                    if "parquet" in partition.files:
                        with contextlib.suppress(PublishError):  # missing: refused when read
                            paths.append(self._local(site, table, partition, reread=False))
        return paths

    def _local_paths(
        self, selection: _Selection, partitions: Iterable[Partition], reread: bool
    ) -> dict[str, Partition]:
        """Local paths of the partitions' Parquet files, fetched and verified if remote."""
        with self._files_lock:
            return {self._local(selection.site, selection.table, p, reread): p for p in partitions}

    def _fresh_paths(self, site: str, table: str, group: Sequence[Partition]) -> list[str]:
        """Local paths of `group`, taking a day's new file if it was republished meanwhile."""
        try:
            return [self._local(site, table, p, reread=True) for p in group]
        except _Stale:
            # Days already streamed came from the manifest as it was; this one is new.
            fresh = self.table_manifest(site, table)
            return [self._local(site, table, fresh.partition(p.date) or p, False) for p in group]

    def _local(self, site: str, table: str, partition: Partition, reread: bool) -> str:
        entry = partition.files["parquet"]
        if self.cache is None:
            assert isinstance(self.target, LocalTarget)
            path = self.target.root.joinpath(*safe_parts(entry.path))
            identity = _identity(path)
            if identity is None:
                raise PublishError(
                    f"{path} is named by {manifest_key(site)} but missing; "
                    f"run `ess-export verify --target {self.target.uri}`"
                )
            name = str(path.resolve())
            self._seen[name] = identity
            return name
        change = self._in_flux(site, table).get(partition.date)
        also = [change.files["parquet"]] if change and "parquet" in change.files else []
        try:
            return str(self.cache.local(self.target, entry, also=also))
        except ChecksumMismatch:
            if reread and self._reread(site, table, partition):
                raise _Stale() from None
            raise PublishError(
                f"{self.target.url(entry.path)} does not match its sha256 in "
                f"{manifest_key(site)}, also after re-reading the manifest: the published "
                f"file is damaged; run `ess-export verify --target {self.target.uri}`"
            ) from None

    def _in_flux(self, site: str, table: str) -> dict[str, Partition]:
        """The days of a table whose files a publish is replacing: date -> new entry."""
        journal = self.journals.get(site)
        return {p.date: p for p in journal.changes.get(table, ())} if journal else {}

    def _reread(self, site: str, table: str, partition: Partition) -> bool:
        """Re-read the site's journal, then its manifest (the order a publish writes them
        in reverse); True if either names another version of the file."""
        journal = peek_journal(self.target, site)
        self.journals.pop(site, None)
        if journal is not None:
            self.journals[site] = journal
        manifest = read_manifest(self.target, site)
        if manifest is None:
            return False
        self.manifests[site] = manifest
        change = self._in_flux(site, table).get(partition.date)
        if change is not None and "parquet" in change.files:
            return True
        fresh = manifest.tables.get(table)
        now = fresh.partition(partition.date) if fresh else None
        old = partition.files["parquet"].sha256
        return now is not None and "parquet" in now.files and now.files["parquet"].sha256 != old

    # --- SQL -----------------------------------------------------------------------------

    def views(self) -> dict[str, list[tuple[str, str]]]:
        """SQL view name -> the (site, table) pairs it reads: ``rack`` spans the sites,
        ``rack_1`` is site 1 only (skipped if a table has that name)."""
        views: dict[str, list[tuple[str, str]]] = {}
        for site, tables in self.tables().items():
            for table in tables:
                views.setdefault(table, []).append((site, table))
        for site, tables in self.tables().items():
            for table in tables:
                views.setdefault(f"{table}_{site}", [(site, table)])
        return views

    def sql(self, statement: str) -> pa.Table:
        """Run one read-only SELECT over the views (see `views`); the whole result."""
        for _ in range(READ_ATTEMPTS - 1):
            try:
                return self.sql_reader(statement).read_all()
            except QueryError:
                if not self._replaced():
                    raise
        return self.sql_reader(statement).read_all()

    def _replaced(self) -> bool:
        """Whether a local file resolved so far is another file now (a publish renamed a
        day's new file over it); notes the new identities."""
        with self._files_lock:
            changed = {n: _identity(Path(n)) for n, seen in self._seen.items()}
            changed = {n: i for n, i in changed.items() if i != self._seen[n]}
            self._seen.update({n: i for n, i in changed.items() if i is not None})
        return bool(changed)

    def sql_reader(self, statement: str, batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
        """Run one read-only SELECT (or SHOW, DESCRIBE, SUMMARIZE) over the views, streaming.

        The statement is parsed, bound and run only in the Dataset's locked database, and
        a failure raises a `QueryError` with no exception chained to it.
        """
        deadline = self._deadline()
        cursor = deadline.cursor
        _check_statement(cursor, statement)
        self._make_views(cursor, statement)
        error = None
        try:
            with deadline.running():
                relation = cursor.sql(statement)
                assert relation is not None  # a SELECT always gives a relation
                reader = relation.to_arrow_reader(batch_rows)
        except _DUCKDB_ERRORS as exc:
            error = self._sql_error(exc, deadline)
        if error is not None:
            raise error  # outside the except clause: nothing of DuckDB's is chained to it
        return pa.RecordBatchReader.from_batches(reader.schema, self._guarded(reader, deadline))

    def _guarded(
        self, reader: pa.RecordBatchReader, deadline: Deadline
    ) -> Iterator[pa.RecordBatch]:
        # Errors found while the rows are computed arrive during iteration.
        while True:
            error = None
            try:
                with deadline.running():
                    batch = reader.read_next_batch()
            except StopIteration:
                return
            except _DUCKDB_ERRORS as exc:
                error = self._sql_error(exc, deadline)
            if error is not None:
                raise error
            yield batch

    def _sql_error(self, exc: Exception, deadline: Deadline) -> QueryError:
        """One line for the user; for a refused file, the same line whatever the file is."""
        names = ", ".join(self.views())
        if isinstance(exc, duckdb.PermissionException) or "Permission Error" in str(exc):
            return QueryError(
                f"the SQL can read only the views ({names}): other files, settings and "
                "extensions are refused"
            )
        return self._limit_error(exc, deadline) or QueryError(
            f"{_first_line(exc)} (the SQL reads only the views: {names})"
        )

    def _make_views(self, cursor: duckdb.DuckDBPyConnection, statement: str) -> None:
        """Make the views the statement needs, as catalog objects of the database.

        A directory root gets every view over its files on the first call. A remote root
        gets, first, a stand-in for each view (its columns, from the manifests, but an
        error if scanned), then the real view for each name in the statement's text, so
        that only those tables' files are fetched.
        """
        views = self.views()
        with self._views_lock:
            first = self._real_views is None
            real = self._real_views = set() if first else self._real_views
            assert real is not None
            if first and self.cache is not None:
                for name, pairs in views.items():
                    cursor.execute(f"CREATE VIEW {_q(name)} AS {self._stand_in_sql(name, pairs)}")
            wanted = set(views) if self.cache is None else referenced_names(statement)
            for name in sorted((wanted & set(views)) - real):
                with self._files_lock:
                    files = [
                        f for site, table in views[name] for f in self._view_files(site, table)
                    ]
                sql = _view_sql(files) if files else self._stand_in_sql(name, views[name], True)
                try:
                    cursor.execute(f"CREATE OR REPLACE VIEW {_q(name)} AS {sql}")
                except _DUCKDB_ERRORS as exc:
                    raise PublishError(
                        f"cannot read the files of view {name}: {_first_line(exc)}; "
                        f"run `ess-export verify --target {self.target.uri}`"
                    ) from None
                real.add(name)

    def _stand_in_sql(self, name: str, pairs: list[tuple[str, str]], empty: bool = False) -> str:
        """A view's columns as its files give them, with no rows (`empty`) or an error if read.

        Files of one table share the manifest's columns; a view over several sites has
        them by name in site order, then the layout's `date` and `site`, as `_view_sql` gives.
        """
        columns: dict[str, str] = {}
        for site, table in pairs:
            for column in self.table_manifest(site, table).columns:
                columns.setdefault(column.name, _DUCKDB_TYPES[column.type])
        columns.update({"date": "DATE", "site": "VARCHAR"})  # DuckDB's order for hive keys
        listed = ", ".join(f"CAST(NULL AS {kind}) AS {_q(c)}" for c, kind in columns.items())
        if empty:  # a table with no published day yet
            return f"SELECT {listed} WHERE false"
        message = (
            f"view {name} was not named in the statement, so its files were not fetched; "
            "name it in the statement's text"
        )
        return f"SELECT {listed} FROM range(1) WHERE error({_sql_string(message)}) IS NULL"

    def _view_files(self, site: str, table: str) -> list[str]:
        manifest = self.table_manifest(site, table)
        days = [p for p in manifest.partitions if "parquet" in p.files]
        return self._fresh_paths(site, table, days)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells one file from the one a publish renames over it; None if absent."""
    try:
        found = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _schema(manifest: TableManifest, zone: ZoneInfo, names: list[str]) -> pa.Schema:
    types = {c.name: c.type for c in manifest.columns}
    timestamp = pa.timestamp("us", tz=zone.key)
    return pa.schema(
        [(n, timestamp if types[n] == "timestamp" else _ARROW_TYPES[types[n]]) for n in names]
    )


def _page_partitions(
    partitions: list[Partition], counts: list[int], offset: int, size: int
) -> tuple[list[Partition], int]:
    """The partitions holding rows [offset, offset + size), and the offset in the first."""
    chosen, first_offset, seen = [], offset, 0
    for partition, count in zip(partitions, counts, strict=True):
        if seen + count > offset and seen < offset + size:
            if not chosen:
                first_offset = offset - seen
            chosen.append(partition)
        seen += count
    return chosen, first_offset


def _catalog_sites(target: Target) -> list[str]:
    sites = catalog_sites(target)
    if sites is None:
        raise QueryError(
            f"{target.url(CATALOG_KEY)} not found: {target.uri} is not a published ess-export "
            "root; give the folder (or s3:// or https:// base) that holds catalog.json"
        )
    return sites


def _view_sql(files: list[str]) -> str:
    listed = ", ".join(_sql_string(f) for f in files)
    return (
        f'SELECT * EXCLUDE ("table") FROM read_parquet([{listed}], hive_partitioning=true, '
        "union_by_name=true, hive_types={'site': VARCHAR, 'table': VARCHAR, 'date': DATE})"
    )


def _check_statement(connection: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Refuses all but one SELECT-like statement (SHOW, DESCRIBE, SUMMARIZE are SELECTs).

    The parser's verdict only: nothing is bound. Not EXPLAIN either: ``EXPLAIN ANALYZE
    COPY ... TO`` runs the COPY.
    """
    error = None
    try:
        statements = connection.extract_statements(statement)
    except duckdb.Error as exc:
        error = QueryError(_first_line(exc))
    if error is not None:
        raise error
    if len(statements) != 1:
        raise QueryError(f"give exactly one SELECT statement (got {len(statements)})")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryError(
            f"only a read-only SELECT is allowed, not {kind.name}: the sql command cannot "
            "change settings, install extensions, attach databases or write files"
        )


def _absolute_dir(cache: FileCache) -> str:
    return f"{Path(cache.directory).resolve()}/"


# --- output -------------------------------------------------------------------------------


def _non_finite(value: Any) -> Any:
    # The published CSV's spelling, so that JSON keeps NaN and inf apart from null.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):  # SQL can return lists and structs
        return [_non_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _non_finite(v) for k, v in value.items()}
    return value


def _text_times(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as RFC 3339 local strings with a colon offset, as in the published CSV.

    A timestamp without a zone (only SQL can make one) is written without an offset.
    """
    return frame.with_columns(
        pl.col(name).dt.to_string(
            CSV_DATETIME_FORMAT if dtype.time_zone else CSV_DATETIME_FORMAT.removesuffix("%:z")
        )
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def _frame(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    try:
        frame = pl.from_arrow(data)
    except pl.exceptions.PolarsError as exc:
        raise QueryError(
            f"cannot convert the result ({_first_line(exc)}); CAST such columns to VARCHAR"
        ) from None
    assert isinstance(frame, pl.DataFrame)
    return frame


def _json_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [_non_finite(row) for row in _text_times(frame).to_dicts()]


def page_json(page: Page) -> str:
    """``{"count", "next", "previous", "results"}``: times RFC 3339 local, NaN/inf as strings."""
    return json.dumps(page.to_dict(), ensure_ascii=False, allow_nan=False, default=str) + "\n"


def records_json(table: pa.Table) -> str:
    """A SQL result as ``{"count": N, "results": [...]}`` with the same value conventions."""
    frame = _frame(table)
    document = {"count": frame.height, "results": _json_records(frame)}
    return json.dumps(document, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def write_csv(reader: pa.RecordBatchReader, out: IO[bytes]) -> int:
    """Stream batches as CSV with the published conventions; returns the rows written."""
    rows, header = 0, True
    for batch in reader:
        _csv_chunk(_frame(batch), out, header)
        header, rows = False, rows + batch.num_rows
    if header:  # no rows at all: still the header
        _csv_chunk(_frame(pa.Table.from_batches([], schema=reader.schema)), out, True)
    return rows


def _csv_chunk(frame: pl.DataFrame, out: IO[bytes], header: bool) -> None:
    try:
        _text_times(frame).write_csv(out, include_header=header, line_terminator="\n")
    except pl.exceptions.PolarsError as exc:
        raise QueryError(
            f"cannot write this result as CSV ({_first_line(exc)}); use --format json or parquet"
        ) from None


def write_parquet(reader: pa.RecordBatchReader, out: IO[bytes]) -> int:
    """Stream batches into one Parquet file (zstd); returns the rows written."""
    rows = 0
    with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def head_frame(reader: pa.RecordBatchReader, limit: int) -> tuple[pl.DataFrame, bool]:
    """The first `limit` rows of a stream, and whether there were more (read no further)."""
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > limit:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return _frame(table.slice(0, limit)), rows > limit


def render_table(frame: pl.DataFrame) -> str:
    """A plain-text table of every row and column, for a terminal."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=1000,
        fmt_str_lengths=80,
        tbl_hide_dataframe_shape=True,
    ):
        return str(_text_times(frame)) + "\n"
