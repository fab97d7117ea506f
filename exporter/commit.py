"""One site's publish under its lease: files first, then the manifest in small commits.

Each day's files are uploaded and verified before the manifest names them. A file that
replaces one the live manifest names is first recorded in the site's journal (see
`journal`), so a reader or the next run can always tell which version it is. The manifest
is committed every `COMMIT_SECONDS` (and at the end), which keeps the journal short and
makes re-exported days visible as they land rather than when the whole site is done.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from .manifest import (
    Column,
    FileEntry,
    Partition,
    Published,
    SiteManifest,
    TableManifest,
    encode_stats,
)
from .publish import commit_site, put_partition, utc_now
from .sources import fingerprint

if TYPE_CHECKING:
    from .config import SiteConfig
    from .journal import SiteJournal
    from .lock import Lease
    from .plan import Job
    from .storage import Target
    from .write import EncodedPartition

__all__ = ["COMMIT_SECONDS", "SiteCommit", "partition_entry"]

# Long enough that a commit (one manifest and one journal write) costs little against the
# days exported in between; short enough that a crash leaves little to roll forward.
COMMIT_SECONDS = 5.0


class SiteCommit:
    """The manifest of one site as a run changes it, committed in steps."""

    def __init__(
        self,
        target: Target,
        site: SiteConfig,
        current: Published | None,
        lease: Lease,
        journal: SiteJournal,
    ) -> None:
        self.target, self.site, self.lease, self.journal = target, site, lease, journal
        self.current = current
        self.base = current.manifest.tables if current else {}
        """The tables as published when the run began: what a re-export overwrites."""
        self.tables: dict[str, TableManifest] = dict(self.base)
        self.done: list[tuple[str, str]] = []
        self.gone: list[str] = []
        """Files of days that have no rows any more, once their entry is committed away."""
        self.rebuilding: str | None = None
        """A table whose schema changed: its manifest is whole only when all its days are."""
        self.last_commit = time.monotonic()

    def start_table(self, name: str, columns: tuple[Column, ...], keys: tuple[str, ...]) -> None:
        self.finish_table()
        previous = self.tables.get(name)
        same = previous is not None and previous.columns == columns
        # A changed schema was planned as a full rebuild: the table starts afresh.
        self.tables[name] = TableManifest(columns, keys, previous.partitions if same else ())
        self.rebuilding = None if same or previous is None else name

    def finish_table(self) -> None:
        if self.rebuilding is not None:
            self.rebuilding = None
            self.commit()

    def publish(self, job: Job, encoded: EncodedPartition | None) -> int:
        """Upload one day's files and record its entry; returns the bytes sent."""
        table = self.tables[job.table]
        old = self.base[job.table].partition(job.day) if job.table in self.base else None
        sent = 0
        if encoded is None:
            self.tables[job.table] = replace(
                table, partitions=tuple(p for p in table.partitions if p.date != job.day)
            )
            if old is not None:  # the day has no rows any more: its files go after the commit
                self.journal.retire([f.path for f in old.files.values()])
                self.gone += [f.path for f in old.files.values()]
        else:
            entry = partition_entry(job, encoded)
            if old is not None and any(
                fmt in old.files and old.files[fmt].sha256 != f.sha256
                for fmt, f in entry.files.items()
            ):
                self.journal.intend(job.table, table.schema_hash, entry)
            # A rebuild re-sends every file: it is also how a damaged object is repaired.
            sent = put_partition(
                self.target, encoded, None if job.reason == "rebuild" else old, job.complete
            )
            self.tables[job.table] = table.with_partitions([entry])
        self.done.append((job.table, job.day))
        if self.rebuilding is None and time.monotonic() - self.last_commit >= COMMIT_SECONDS:
            self.commit()
        return sent

    def commit(self) -> Published | None:
        """Name everything uploaded so far (the table being rebuilt stays as published)."""
        tables = dict(self.tables)
        if self.rebuilding is not None and self.rebuilding in self.base:
            tables[self.rebuilding] = self.base[self.rebuilding]
        manifest = SiteManifest(self.site.id, self.site.name, self.site.timezone, utc_now(), tables)
        self.lease.check()
        if not manifest.same_content(self.current.manifest if self.current else None):
            self.current = commit_site(self.target, manifest)
        self.journal.committed(manifest, [d for d in self.done if d[0] != self.rebuilding])
        self.last_commit = time.monotonic()
        return self.current


def partition_entry(job: Job, encoded: EncodedPartition) -> Partition:
    """The manifest entry of an exported day."""
    found = job.fingerprint or fingerprint(
        encoded.rows,
        datetime.fromisoformat(encoded.min_timestamp),
        datetime.fromisoformat(encoded.max_timestamp),
    )
    return Partition(
        date=job.day,
        rows=encoded.rows,
        complete=job.complete,
        min_timestamp=encoded.min_timestamp,
        max_timestamp=encoded.max_timestamp,
        duplicates=encoded.duplicates,
        fingerprint=found,
        stats_json=encode_stats(encoded.stats),
        files={fmt: FileEntry(f.key, f.size, f.sha256) for fmt, f in encoded.files.items()},
    )
