"""One site's export: each planned day extracted, encoded and published in small commits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .commit import SiteCommit
from .config import Config
from .errors import PublishError
from .manifest import Published
from .memory import release_freed_memory
from .plan import Job
from .report import RunReport
from .sources import Source
from .survey import TablePlan

if TYPE_CHECKING:  # polars loads only when a day is exported
    from .write import EncodedPartition

__all__ = ["Progress", "export_site"]

# Called with (job, partition or None when the day turned out empty) after each partition.
Progress = Callable[[Job, "EncodedPartition | None"], None]


def export_site(
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
