"""`run()`: the one place that knows the order of the stages.

config -> plan (`survey`) -> extract, write, publish (`export`), one site at a time (under
the site's lease), one partition (local day) at a time, so memory is bounded by the largest
partition and not by the table; then the catalog and the pages.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from .catalog import DamagedManifest, still_published
from .commit import SiteCommit
from .config import Config
from .errors import ExportError, PublishError
from .export import Progress, export_site
from .heal import heal, recover_site, retire_files
from .journal import Journal, SiteJournal, peek_journal
from .lock import Lease, site_lease
from .manifest import Published
from .publish import commit_catalog
from .report import RunReport
from .site import SiteChanges, generator, gone_pages, put_pages, select_pages
from .sources import open_source
from .storage import Reader, Target, open_reader, open_target
from .survey import Plan, TablePlan, make_plan, select_sites
from .verification import prune

# Plan, RunReport, TablePlan, make_plan and select_sites are imported from here too.
__all__ = ["Plan", "RunReport", "TablePlan", "make_plan", "run", "select_sites"]


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
                after = export_site(site, source, table_plans, config, report, progress)
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
