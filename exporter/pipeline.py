"""`run()`: the one place that knows the order of the stages.

config -> plan -> extract -> write -> publish, one site at a time (under the site's lock),
one partition (local day) at a time, so memory is bounded by the largest partition and not
by the table.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import DamagedManifest, read_published, still_published
from .commit import SiteCommit
from .config import Config, SiteConfig
from .errors import ConfigError, ExportError, PublishError
from .heal import heal, recover_site, retire_files
from .journal import Journal, SiteJournal, peek_journal
from .lock import Lease, site_lease
from .manifest import Column, Published, TableManifest
from .memory import release_freed_memory
from .plan import Job, plan_table
from .publish import commit_catalog
from .site import SiteChanges, generator, gone_pages, put_pages, select_pages
from .sources import Source, TableSchema, open_source
from .storage import Reader, Target, open_reader, open_target
from .verification import prune

if TYPE_CHECKING:  # polars loads only when a day is exported
    from .write import EncodedPartition

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
    broken: dict[str, str] = field(default_factory=dict)
    """Sites left out because their manifest cannot be read: why, and what to run."""

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
    leftover: list[str] = field(default_factory=list)
    """Files an interrupted run left that no manifest names any more (deleted)."""
    recovered: list[str] = field(default_factory=list)
    """site/table/day entries an interrupted run left in flux: rolled forward, or dropped
    and exported again."""
    pruned: bool = False
    dry_run: bool = False
    jobs: list[Job] = field(default_factory=list)
    error: str = ""
    """The error line of a failed run ("" when it did not fail)."""
    stage: str = "plan"
    """Where a failed run stopped: "plan" (before any partition) or "export"."""

    def to_dict(self) -> dict[str, object]:
        """The JSON run report (`--report FILE`) for CI; a failed run's begins with
        `failed`, `error` and `stage`, and the rest says what it did before."""
        failure = {"failed": True, "error": self.error, "stage": self.stage} if self.error else {}
        return {
            **failure,
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
            "leftover_files": self.leftover,
            "recovered": self.recovered,
            "pruned": self.pruned,
            "dry_run": self.dry_run,
        }


# Called with (job, partition or None when the day turned out empty) after each partition.
Progress = Callable[[Job, "EncodedPartition | None"], None]


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
            description_ko=docs[c.source].description_ko if c.source in docs else "",
        )
        for c in schema.columns
    )


def make_plan(
    config: Config,
    target: Reader | str,
    *,
    sites: Sequence[str] = (),
    tables: Sequence[str] = (),
    since: date | None = None,
    until: date | None = None,
    rebuild: bool = False,
    full_check: bool = False,
    now: datetime | None = None,
    pending: dict[str, Journal | None] | None = None,
) -> Plan:
    """Discover schemas, extents (and fingerprints), then decide purely what each table needs.

    `pending`: each site's journal, whose unfinished days join the plan (read here when
    not given). `target` is a store or its URI (opened with the config's S3 options).
    """
    if isinstance(target, str):
        target = open_reader(target, config.s3)
    if since and until and since > until:
        raise ConfigError(f"--since {since} is after --until {until}; swap them")
    now = now or datetime.now(UTC)
    planned = []
    found: dict[str, Published | None] = {}
    broken: dict[str, str] = {}
    for site in select_sites(config, sites, tables):
        try:
            found[site.id] = read_published(target, site.id)
        except DamagedManifest as exc:
            if not rebuild:
                broken[site.id] = str(exc)  # the other sites go on
                continue
            found[site.id] = None  # rebuilt from the source as if never published
        published = found[site.id].manifest if found[site.id] else None
        source = open_source(site)
        with source.session():
            source.check()
            journal = pending[site.id] if pending is not None else peek_journal(target, site.id)
            unfinished = journal.pending if journal else []
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
                    pending={p.date: p.reason for p in unfinished if p.table == table.name},
                )
                planned.append(TablePlan(site, schema, columns, tuple(jobs)))
    return Plan(tuple(planned), found, broken)


def run(
    config: Config,
    *,
    target: Target | str | None = None,
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
    """Export and publish; with dry_run, only plan. Returns what was done.

    `target`: an opened Target (with its own options), or a directory or
    ``s3://bucket/prefix`` opened with the config's [export.s3] options; None: the config's
    target. A dry run only reads, so it also takes an ``http(s)://`` base.

    Before planning, an interrupted run's journal is rolled forward or back, and the days
    it had not finished join the plan: the same command after any interruption converges.

    A run that fails raises its ExportError with `exc.report`: this RunReport so far, with
    the error line, the stage and (in `failed`) the partition that stopped it.
    """
    started = time.perf_counter()
    report = RunReport(dry_run=dry_run)
    out: Reader | None = None

    def planned(store: Reader, pending: dict[str, Journal | None]) -> Plan:
        plan = make_plan(
            config,
            store,
            sites=sites,
            tables=tables,
            since=since,
            until=until,
            rebuild=rebuild,
            full_check=full_check,
            now=now,
            pending=pending,
        )
        report.jobs, report.stage = plan.jobs, "export"
        if on_plan:
            on_plan(plan)
        return plan

    try:
        if dry_run:
            out = _opened_reader(target, config)
            chosen = select_sites(config, sites, tables)
            planned(out, {site.id: peek_journal(out, site.id) for site in chosen})
            report.seconds = time.perf_counter() - started
            return report
        out = _opened_target(target, config)
        return _run(
            config,
            out,
            report,
            started,
            planned,
            sites=sites,
            tables=tables,
            rebuild=rebuild,
            prune_unnamed=prune_unnamed,
            progress=progress,
        )
    except ExportError as exc:
        report.error = str(exc)
        report.requests = out.requests if out else 0
        report.seconds = time.perf_counter() - started
        exc.report = report
        raise


def _opened_target(target: Target | str | None, config: Config) -> Target:
    """`target` itself, or the store its URI names (None: the config's target)."""
    if target is None or isinstance(target, str):
        return open_target(target or config.target, config.s3)
    if not isinstance(target, Target):  # a read-only store: nothing can be published there
        raise target.read_only()
    return target


def _opened_reader(target: Reader | str | None, config: Config) -> Reader:
    if target is None or isinstance(target, str):
        return open_reader(target or config.target, config.s3)
    return target


def _run(
    config: Config,
    out: Target,
    report: RunReport,
    started: float,
    planned: Callable[[Reader, dict[str, Journal | None]], Plan],
    *,
    sites: Sequence[str],
    tables: Sequence[str],
    rebuild: bool,
    prune_unnamed: bool,
    progress: Progress | None,
) -> RunReport:
    length = lease_length(config)
    carried: dict[str, Journal | None] = {}
    for site in select_sites(config, sites, tables):
        carried[site.id], found = heal(out, site.id, length)
        if found is not None:
            report.recovered += [f"{site.id}/{d}" for d in found.rolled_forward + found.dropped]
    plan = planned(out, carried)

    by_site: dict[str, list[TablePlan]] = {}
    for table_plan in plan.tables:
        by_site.setdefault(table_plan.site.id, []).append(table_plan)
    touched = []
    known = dict(plan.published)  # each site's manifest as last seen, checked before use
    changes: dict[str, SiteChanges] = {}  # for rendering only the pages a change touches
    journals: dict[str, SiteJournal] = {}
    # Leases are held to the end: the files a run retires are deleted after the catalog.
    with contextlib.ExitStack() as leases:
        try:
            leased: dict[str, tuple[Lease, list[TablePlan]]] = {}
            for site_id, table_plans in by_site.items():
                left = carried.get(site_id)
                if not prune_unnamed and not any(t.jobs for t in table_plans) and left is None:
                    touched.append(site_id)  # still listed in the catalog, if a crash left it out
                    continue  # nothing to do: no lock, no listing, a no-op costs a few requests
                lease = leases.enter_context(site_lease(out, site_id, length))
                touched.append(site_id)
                # Again now that we hold the lease: another run may have published meanwhile.
                left, found = recover_site(out, site_id)
                if found is not None:
                    report.recovered += [
                        f"{site_id}/{d}" for d in found.rolled_forward + found.dropped
                    ]
                journals[site_id] = SiteJournal(out, site_id, lease.owner, left)
                # Every site's intent is recorded before any site's files change, so that
                # the next run finishes what this one set out to do, whenever it stops.
                journals[site_id].begin(
                    [(j.table, j.day, j.reason) for t in table_plans for j in t.jobs]
                )
                leased[site_id] = (lease, table_plans)
            for site_id, (lease, table_plans) in leased.items():
                before = _still_published(out, site_id, known.get(site_id), rebuild)
                known[site_id] = None  # unknown, should the export fail half-way
                source = open_source(table_plans[0].site)
                site = SiteCommit(out, table_plans[0].site, before, lease, journals[site_id])
                after = _export_site(site, source, table_plans, config, report, progress)
                known[site_id] = after
                if after is not None and after is not before:
                    changes[site_id] = SiteChanges.between(before, after.manifest)
                report.sites.append(site_id)
                if prune_unnamed:  # listing every data file is the one cost that grows with them
                    report.unnamed += prune(out, [site_id], config.formats, delete=True)
            report.pruned = prune_unnamed
        finally:
            # Also after a failure: a partly re-exported site's manifest changed. Then the
            # error that stopped the run is the one to report, not one of this catalog's.
            failing = sys.exc_info()[1] is not None
            if touched:
                # The pages change with the catalog only; unchanged pages are not rewritten.
                with contextlib.suppress(Exception) if failing else contextlib.nullcontext():
                    commit_catalog(
                        out,
                        config,
                        touched,
                        before=lambda c, m, old: put_pages(
                            out,
                            c,
                            m,
                            select_pages(c, old, changes),
                            drop=gone_pages(changes.values()),
                        ),
                        known=known,
                        generator=generator(),
                    )
            with contextlib.suppress(OSError):
                out.staging().rmdir()  # only when empty: nothing of a finished run is left there
        # Last, so that no manifest or catalog a reader may hold still names them. (After a
        # failure they stay, listed in the journal: the next run deletes them.)
        for site_id, journal in journals.items():
            emptied, leftover = retire_files(out, journal, known.get(site_id))
            report.emptied += emptied
            report.leftover += leftover
    report.requests = out.requests
    report.seconds = time.perf_counter() - started
    if plan.broken:
        more = f" ({len(plan.broken) - 1} more site(s) likewise)" if len(plan.broken) > 1 else ""
        raise PublishError(next(iter(plan.broken.values())) + more)
    return report


def _still_published(
    out: Target, site: str, known: Published | None, rebuild: bool
) -> Published | None:
    try:
        return still_published(out, site, known)
    except DamagedManifest:
        if rebuild:
            return None  # being rebuilt from the source
        raise


def lease_length(config: Config) -> timedelta:
    return timedelta(minutes=config.lock_minutes)


def _export_site(
    site: SiteCommit,
    source: Source,
    table_plans: list[TablePlan],
    config: Config,
    report: RunReport,
    progress: Progress | None,
) -> Published | None:
    """Export a site's partitions, committing its manifest in steps; returns the manifest
    now published (the one found under the lease, when nothing changed).

    After a failure, what was uploaded so far is committed (the journal keeps the rest for
    the next run), then the error propagates.
    """
    try:
        for table_plan in table_plans:
            site.start_table(table_plan.schema.table.name, table_plan.columns, _keys(table_plan))
            for job in table_plan.jobs:
                try:
                    encoded = _export_partition(site, source, table_plan, job, config, report)
                except Exception:
                    report.failed.append(f"{job.site}/{job.table}/{job.day}")
                    raise
                if progress:
                    progress(job, encoded)
        site.finish_table()
        return site.commit()
    except BaseException:
        if site.done:  # nothing published yet: nothing to name
            with contextlib.suppress(Exception):  # the first error is the one to report
                site.commit()
        raise


def _keys(table_plan: TablePlan) -> tuple[str, ...]:
    return tuple(c.name for c in table_plan.schema.keys)


def _export_partition(
    site: SiteCommit,
    source: Source,
    table_plan: TablePlan,
    job: Job,
    config: Config,
    report: RunReport,
) -> EncodedPartition | None:
    """Extract, encode and publish one day; None when the day has no rows."""
    from .write import PartitionWriter

    staging = site.target.staging()
    with _staging_errors(job, staging):
        writer = PartitionWriter(
            table_plan.schema,
            site=job.site,
            date=job.day,
            timezone=table_plan.site.timezone,
            formats=config.formats,
            staging=staging,
        )
    try:
        for batch in source.stream(table_plan.schema, job.start, job.end, job.day):
            with _staging_errors(job, staging):
                writer.write(batch)
        with _staging_errors(job, staging):
            encoded = writer.close()
        sent = site.publish(job, encoded)
    finally:
        writer.discard()
        # So that memory stays bounded by one partition however many days a run exports.
        release_freed_memory()
    if encoded is not None:
        report.bytes += sent
        report.unchanged += sent == 0
        report.partitions += 1
        report.rows += encoded.rows
    return encoded


@contextlib.contextmanager
def _staging_errors(job: Job, staging: Path) -> Iterator[None]:
    """A day's files are written to the staging folder first (on the target's disk for a
    directory): a full or read-only disk there is one line naming the day and the folder."""
    try:
        yield
    except OSError as exc:
        raise PublishError(
            f"cannot write the files of site {job.site} table {job.table} {job.day} in "
            f"{staging}: {exc.strerror or exc}; free space there (or make it writable) "
            "and run again"
        ) from None
