"""A published root's manifests and files under a Dataset: checks, local paths, the engine."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import duckdb

from ..catalog import read_manifest
from ..errors import PublishError, QueryError
from ..journal import Journal, peek_journal
from ..layout import manifest_key
from ..manifest import Partition, SiteManifest, TableManifest
from ..storage import LocalTarget, Reader
from .cache import ChecksumMismatch, FileCache, default_cache_dir, safe_parts
from .duck import DUCKDB_ERRORS, connect, first_line
from .engine import Deadline, Engine, Limits

if TYPE_CHECKING:
    from .selection import Selection

__all__ = ["READ_ATTEMPTS", "FileReader", "Stale"]

# DuckDB opens a Parquet file more than once per query: a publish that swaps in a day's new
# file meanwhile makes the read fail (measured: 1 query in 5 while a file is replaced in a
# loop), though both versions are good. Such a read is tried again, this many times in all.
READ_ATTEMPTS = 4


class Stale(Exception):
    """A file's manifest entry changed during the query: resolve again from the new one."""


class FileReader:
    """The manifests, journals and files of a published root, and the database reading them.

    The base of `Dataset`: the manifest checks and the cache take turns between threads.
    """

    def __init__(
        self,
        target: Reader,
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

    def close(self) -> None:
        with self._engine_lock:
            if self._engine is not None:
                self._engine.close()
            self._engine, self._real_views = None, None

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

    @contextlib.contextmanager
    def _reading(self, selection: Selection, deadline: Deadline) -> Iterator[None]:
        """DuckDB failing on files that passed the manifest's checks: a damaged publish."""
        try:
            with deadline.running():
                yield
        except DUCKDB_ERRORS as exc:
            limit = self._limit_error(exc, deadline)
            if limit is None and self._replaced():
                raise Stale() from None  # a publish swapped a file in: read again
            raise limit or PublishError(
                f"cannot read table {selection.table} of site {selection.site}: "
                f"{first_line(exc)}; run `ess-export verify --target {self.target.uri}`"
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
        """This thread's cursor of the Dataset's database (see `exporter.query.engine`)."""
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
        self, selection: Selection, partitions: Iterable[Partition], reread: bool
    ) -> dict[str, Partition]:
        """Local paths of the partitions' Parquet files, fetched and verified if remote."""
        with self._files_lock:
            return {self._local(selection.site, selection.table, p, reread): p for p in partitions}

    def _fresh_paths(self, site: str, table: str, group: Sequence[Partition]) -> list[str]:
        """Local paths of `group`, taking a day's new file if it was republished meanwhile."""
        try:
            return [self._local(site, table, p, reread=True) for p in group]
        except Stale:
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
                raise Stale() from None
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

    def _replaced(self) -> bool:
        """Whether a local file resolved so far is another file now (a publish renamed a
        day's new file over it); notes the new identities."""
        with self._files_lock:
            changed = {n: _identity(Path(n)) for n, seen in self._seen.items()}
            changed = {n: i for n, i in changed.items() if i != self._seen[n]}
            self._seen.update({n: i for n, i in changed.items() if i is not None})
        return bool(changed)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells one file from the one a publish renames over it; None if absent."""
    try:
        found = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _absolute_dir(cache: FileCache) -> str:
    return f"{Path(cache.directory).resolve()}/"
