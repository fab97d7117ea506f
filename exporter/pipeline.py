"""`run()`: the one place that knows the order of the stages.

config -> plan -> extract -> write -> publish, one site at a time (under the site's lock),
one partition (local day) at a time, so memory is bounded by the largest partition and not
by the table.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from .config import Config, SiteConfig
from .errors import ConfigError
from .manifest import (
    Column,
    FileEntry,
    Partition,
    Published,
    SiteManifest,
    TableManifest,
    encode_stats,
)
from .memory import release_freed_memory
from .plan import Job, plan_table
from .publish import (
    commit_catalog,
    commit_site,
    prune,
    put_partition,
    read_published,
    site_lock,
    still_published,
    utc_now,
)
from .site import SiteChanges, generator, put_pages, select_pages
from .sources import Source, TableSchema, fingerprint, open_source
from .storage import Target, open_target
from .write import EncodedPartition, PartitionWriter

__all__ = ["Plan", "RunReport", "TablePlan", "make_plan", "run", "select_sites"]


@dataclass(frozen=True)
class TablePlan:
    site: SiteConfig
    schema: TableSchema
    columns: tuple[Column, ...]
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class Plan:
    tables: tuple[TablePlan, ...]
    published: dict[str, Published | None] = field(default_factory=dict)
    """Each planned site's manifest as the plan found it."""

    @property
    def jobs(self) -> list[Job]:
        return [job for t in self.tables for job in t.jobs]


@dataclass
class RunReport:
    partitions: int = 0
    """Partitions extracted and written (uploaded, or found unchanged)."""
    unchanged: int = 0
    """Of those, partitions whose files were already published byte for byte."""
    rows: int = 0
    bytes: int = 0
    """Data bytes uploaded."""
    requests: int = 0
    """Requests sent to the target."""
    seconds: float = 0.0
    sites: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """site/table/day of the partition that stopped the run, if any."""
    unnamed: list[str] = field(default_factory=list)
    """Objects under data/ that no manifest names (deleted when pruning)."""
    emptied: list[str] = field(default_factory=list)
    """Files deleted because their day has no rows any more at the source."""
    pruned: bool = False
    dry_run: bool = False
    jobs: list[Job] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """The JSON run report (`--report FILE`) for CI."""
        return {
            "partitions_planned": len(self.jobs),
            "partitions_exported": self.partitions - self.unchanged,
            "partitions_unchanged": self.unchanged,
            "partitions_failed": self.failed,
            "rows": self.rows,
            "bytes_sent": self.bytes,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "sites": self.sites,
            "unnamed_objects": self.unnamed,
            "emptied_files": self.emptied,
            "pruned": self.pruned,
            "dry_run": self.dry_run,
        }


# Called with (job, partition or None when the day turned out empty) after each partition.
Progress = Callable[[Job, EncodedPartition | None], None]


def select_sites(config: Config, sites: Sequence[str], tables: Sequence[str]) -> list[SiteConfig]:
    """The configured sites (and tables) named on the command line, or all of them."""
    known = [s.id for s in config.sites]
    for site in sites:
        if site not in known:
            raise ConfigError(f"unknown --site {site!r}; configured sites: {', '.join(known)}")
    chosen = [s for s in config.sites if not sites or s.id in sites]
    known_tables = sorted({t.name for s in chosen for t in s.tables})
    for table in tables:
        if table not in known_tables:
            raise ConfigError(
                f"unknown --table {table!r}; tables of the chosen sites: {', '.join(known_tables)}"
            )
    return chosen


def _columns(schema: TableSchema) -> tuple[Column, ...]:
    docs = schema.table.columns
    return tuple(
        Column(
            name=c.name,
            type=c.type,
            source=c.source,
            nullable=c.nullable,
            description=docs[c.source].description if c.source in docs else "",
            unit=docs[c.source].unit if c.source in docs else "",
        )
        for c in schema.columns
    )


def make_plan(
    config: Config,
    target: Target | str,
    *,
    sites: Sequence[str] = (),
    tables: Sequence[str] = (),
    since: date | None = None,
    until: date | None = None,
    rebuild: bool = False,
    full_check: bool = False,
    now: datetime | None = None,
) -> Plan:
    """Discover schemas, extents (and fingerprints), then decide purely what each table needs.

    `target` is a Target or, as for `run`, a directory or ``s3://bucket/prefix``.
    """
    if isinstance(target, str):
        target = open_target(target, config.s3)
    if since and until and since > until:
        raise ConfigError(f"--since {since} is after --until {until}; swap them")
    now = now or datetime.now(UTC)
    planned = []
    found: dict[str, Published | None] = {}
    for site in select_sites(config, sites, tables):
        source = open_source(site)
        with source.session():
            source.check()
            found[site.id] = read_published(target, site.id)
            published = found[site.id].manifest if found[site.id] else None
            for table in site.tables:
                if tables and table.name not in tables:
                    continue
                schema = source.schema(table)
                columns = _columns(schema)
                jobs = plan_table(
                    site=site.id,
                    table=table.name,
                    timezone=site.timezone,
                    extent=source.extent(schema),
                    published=published.tables.get(table.name) if published else None,
                    schema_hash=TableManifest(columns, ()).schema_hash,
                    now=now,
                    settle=timedelta(minutes=config.settle_minutes),
                    lookback_days=config.lookback_days,
                    since=since,
                    until=until,
                    rebuild=rebuild,
                    fingerprints=source.fingerprints(schema) if full_check else None,
                )
                planned.append(TablePlan(site, schema, columns, tuple(jobs)))
    return Plan(tuple(planned), found)


def run(
    config: Config,
    *,
    target: str | None = None,
    sites: Sequence[str] = (),
    tables: Sequence[str] = (),
    since: date | None = None,
    until: date | None = None,
    rebuild: bool = False,
    full_check: bool = False,
    dry_run: bool = False,
    prune_unnamed: bool = False,
    now: datetime | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Export and publish; with dry_run, only plan. Returns what was done."""
    started = time.perf_counter()
    out = open_target(target or config.target, config.s3)
    plan = make_plan(
        config,
        out,
        sites=sites,
        tables=tables,
        since=since,
        until=until,
        rebuild=rebuild,
        full_check=full_check,
        now=now,
    )
    report = RunReport(dry_run=dry_run, jobs=plan.jobs)
    if on_plan:
        on_plan(plan)
    if dry_run:
        report.seconds = time.perf_counter() - started
        return report

    by_site: dict[str, list[TablePlan]] = {}
    for table_plan in plan.tables:
        by_site.setdefault(table_plan.site.id, []).append(table_plan)
    touched = []
    known = dict(plan.published)  # each site's manifest as last seen, checked before use
    changes: dict[str, SiteChanges] = {}  # for rendering only the pages a change touches
    try:
        for site_id, table_plans in by_site.items():
            if not prune_unnamed and not any(t.jobs for t in table_plans):
                touched.append(site_id)  # still listed in the catalog, if a crash left it out
                continue  # nothing to do: no lock, no listing, a no-op costs a few requests
            with site_lock(out, site_id, timedelta(minutes=config.lock_minutes)):
                touched.append(site_id)
                source = open_source(table_plans[0].site)
                # Again now that we hold the lock: another run may have published meanwhile.
                before = still_published(out, site_id, known.get(site_id))
                known[site_id] = None  # unknown, should the export fail half-way
                after = _export_site(out, source, table_plans, before, config, report, progress)
                known[site_id] = after
                if after is not None and after is not before:
                    changes[site_id] = SiteChanges.between(before, after.manifest)
                report.sites.append(site_id)
                if prune_unnamed:  # listing every data file is the one cost that grows with them
                    report.unnamed += prune(out, [site_id], config.formats, delete=True)
        report.pruned = prune_unnamed
    finally:
        # Also after a failure: a partly re-exported site's manifest changed.
        if touched:
            # The pages change with the catalog only; unchanged pages are not rewritten.
            commit_catalog(
                out,
                config,
                touched,
                before=lambda c, m, old: put_pages(
                    out,
                    c,
                    m,
                    select_pages(c, old, changes),
                    drop=[key for change in changes.values() for key in change.gone],
                ),
                known=known,
                generator=generator(),
            )
        with contextlib.suppress(OSError):
            out.staging().rmdir()  # only when empty: nothing of a finished run is left there
    # Last, so that no manifest or catalog a reader may hold still names them. (After a
    # failure they stay: `verify` lists them as extra, `--prune` deletes them.)
    for key in report.emptied:
        out.delete(key)
    report.requests = out.requests
    report.seconds = time.perf_counter() - started
    return report


def _export_site(
    out: Target,
    source: Source,
    table_plans: list[TablePlan],
    current: Published | None,
    config: Config,
    report: RunReport,
    progress: Progress | None,
) -> Published | None:
    """Export a site's partitions, then commit its manifest; returns the manifest now
    published (`current`, the one found under the lock, when nothing changed). Once it is
    committed, the files of days that have no rows any more go to `report.emptied`.

    The manifest is committed even when a later partition fails, so that the days already
    re-written are named by their new entries at once; then the error propagates.
    """
    site = table_plans[0].site
    published = current.manifest if current else None
    tables = dict(published.tables) if published else {}
    exported, finished = 0, False
    dropped: list[str] = []
    try:
        for table_plan in table_plans:
            name = table_plan.schema.table.name
            previous = tables.get(name)
            # A changed schema was planned as a full rebuild: start the table afresh.
            same = previous is not None and previous.columns == table_plan.columns
            kept = previous.partitions if same and previous else ()
            tables[name] = TableManifest(table_plan.columns, _keys(table_plan), kept)
            for job in table_plan.jobs:
                entry = tables[name].partition(job.day)  # as published, if it was
                try:
                    encoded = _export_partition(out, source, table_plan, job, entry, config, report)
                except Exception:
                    report.failed.append(f"{site.id}/{name}/{job.day}")
                    raise
                if encoded is None and entry is not None:  # the day has no rows any more
                    dropped += [f.path for f in entry.files.values()]
                tables[name] = _record(tables[name], job, encoded)
                exported += 1
                if progress:
                    progress(job, encoded)
        finished = True
    finally:
        manifest = SiteManifest(site.id, site.name, site.timezone, utc_now(), tables)
        if (finished or exported) and not manifest.same_content(published):
            current = commit_site(out, manifest)
            report.emptied += dropped
    return current


def _keys(table_plan: TablePlan) -> tuple[str, ...]:
    return tuple(c.name for c in table_plan.schema.keys)


def _export_partition(
    out: Target,
    source: Source,
    table_plan: TablePlan,
    job: Job,
    previous: Partition | None,
    config: Config,
    report: RunReport,
) -> EncodedPartition | None:
    """Extract, encode and upload one day; None when the day has no rows."""
    writer = PartitionWriter(
        table_plan.schema,
        site=job.site,
        date=job.day,
        timezone=table_plan.site.timezone,
        formats=config.formats,
        staging=out.staging(),
    )
    try:
        for batch in source.stream(table_plan.schema, job.start, job.end, job.day):
            writer.write(batch)
        encoded = writer.close()
        if encoded is None:
            return None
        # A rebuild re-sends every file: it is also how a damaged or deleted object is repaired.
        unless_same = None if job.reason == "rebuild" else previous
        sent = put_partition(out, encoded, unless_same, job.complete)
    finally:
        writer.discard()
        # So that memory stays bounded by one partition however many days a run exports.
        release_freed_memory()
    report.bytes += sent
    report.unchanged += sent == 0
    report.partitions += 1
    report.rows += encoded.rows
    return encoded


def _record(table: TableManifest, job: Job, encoded: EncodedPartition | None) -> TableManifest:
    """The table's manifest with this day's entry replaced (or dropped: no rows any more)."""
    if encoded is None:
        return replace(table, partitions=tuple(p for p in table.partitions if p.date != job.day))
    found = job.fingerprint or fingerprint(
        encoded.rows,
        datetime.fromisoformat(encoded.min_timestamp),
        datetime.fromisoformat(encoded.max_timestamp),
    )
    partition = Partition(
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
    return table.with_partitions([partition])
