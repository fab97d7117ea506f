"""`Dataset`: a published root opened for the old API's questions, downloads and SQL.

`query` and `rows` follow the old service: ISO 8601 times, a time without offset in the
site's zone, `end` inclusive, rows ordered by timestamp, the table's keys, then the selected
columns; pages of 100 from 1. They read the manifests first and open only the day files
whose [min_timestamp, max_timestamp] meets the range, and only the needed columns; a day
fully inside the range takes its row count from the manifest. SQL is built only from names
found in the manifest (quoted); values are bound parameters.

A remote root's files are fetched into a verified cache (`exporter.query.cache`) and read
locally: DuckDB gets no network access and never downloads an extension. Every query runs
in one DuckDB database per Dataset (`exporter.query.engine`) whose limits (time, memory, threads,
temporary files) and file access (the dataset's files only) are set and locked before any
SQL of the user's is seen; each thread uses its own cursor, so threads may share a Dataset.
`sql` parses the user's statement there, refuses all but one SELECT-like statement, and
runs it over views that are catalog objects of that database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from ..catalog import DamagedManifest, catalog_sites, read_manifest
from ..errors import PublishError, QueryError
from ..journal import peek_journal
from ..layout import CATALOG_KEY
from ..storage import LocalTarget, Reader, open_reader
from .cache import FileCache
from .duck import connect
from .engine import Deadline, Limits
from .files import READ_ATTEMPTS, Stale
from .output import Page
from .request import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Request,
    page_number,
    parse_page,
    parse_page_size,
)
from .selection import TOTAL, Selection, page_partitions, select
from .sql import BATCH_ROWS, Sandbox

__all__ = ["Dataset"]


class Dataset(Sandbox):
    """A published root, read through its catalog and site manifests.

    Safe to share between threads: each thread queries on its own DuckDB cursor, and
    fetching into the cache takes turns.
    """

    @classmethod
    def open(
        cls,
        uri: str,
        *,
        target: Reader | None = None,
        connect: Callable[[], duckdb.DuckDBPyConnection] = connect,
        cache_dir: str | Path | None = None,
        timeout: float | None = None,
        memory: str | None = None,
        threads: int | None = None,
        temp_limit: str | None = None,
    ) -> Dataset:
        """Open a directory, ``s3://bucket/prefix`` or ``http(s)://base/`` and read its manifests.

        `connect` makes the DuckDB database every query runs in; `cache_dir` overrides the
        cache of remote files (see `exporter.query.cache`), where temporary files also go.
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

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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
        request = Request.of(
            site, table, bank, rack, fields, start, end, descending_keys=descending_keys
        )
        size = parse_page_size(page_size, max_page_size)
        wanted = parse_page(page)
        deadline = self._deadline()  # one time budget for the whole question
        for attempt in range(READ_ATTEMPTS):
            selection = self._select(request)
            try:
                return self._page(selection, wanted, size, attempt == 0, deadline)
            except Stale:
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
        request = Request.of(
            site, table, bank, rack, fields, start, end, descending_keys=descending_keys
        )
        selection = self._select(request)
        return pa.RecordBatchReader.from_batches(selection.schema, self._stream(selection))

    def _select(self, request: Request) -> Selection:
        manifest = self.table_manifest(request.site, request.table)
        zone = self.zone(request.site)
        return select(request, manifest, zone, self._in_flux(request.site, request.table))

    def _page(
        self, selection: Selection, page: int | str, size: int, reread: bool, deadline: Deadline
    ) -> Page:
        found = None
        if isinstance(page, int) and selection.known_rows == (None,):
            found = self._read_page_counted(selection, page, size, reread, deadline)
        if found is None:
            counts = self._counts(selection, reread, deadline)
            total = sum(counts)
            number = page_number(page, total, size)
            # Not schema.empty_table(): that imports pandas (~0.4 s) on the first call.
            data = pa.Table.from_batches([], schema=selection.schema)
            if total:
                data = self._read_page(
                    selection, counts, (number - 1) * size, size, reread, deadline
                )
        else:
            data, total = found
            number = page_number(page, total, size)
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

    def _counts(self, selection: Selection, reread: bool, deadline: Deadline) -> list[int]:
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
        selection: Selection,
        counts: list[int],
        offset: int,
        size: int,
        reread: bool,
        deadline: Deadline,
    ) -> pa.Table:
        partitions = list(selection.partitions)
        if selection.disjoint:
            # Days do not overlap in time: read only the days this page falls in.
            partitions, offset = page_partitions(partitions, counts, offset, size)
        paths = self._local_paths(selection, partitions, reread)
        params = {**selection.params, "files": list(paths), "limit": size, "offset": offset}
        with self._reading(selection, deadline):
            relation = deadline.cursor.sql(selection.select_sql(page=True), params=params)
            assert relation is not None
            return selection.conform(relation.to_arrow_table())

    def _read_page_counted(
        self, selection: Selection, page: int, size: int, reread: bool, deadline: Deadline
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
        total = table.column(TOTAL)[0].as_py()
        return selection.conform(table.drop_columns([TOTAL])), total

    def _stream(self, selection: Selection) -> Iterator[pa.RecordBatch]:
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


def _catalog_sites(target: Reader) -> list[str]:
    sites = catalog_sites(target)
    if sites is None:
        raise QueryError(
            f"{target.url(CATALOG_KEY)} not found: {target.uri} is not a published ess-export "
            "root; give the folder (or s3:// or https:// base) that holds catalog.json"
        )
    return sites
