"""Pure planning: which local days of a table to (re)export. No I/O here.

A day is exported when it is not yet published, was published incomplete, falls inside the
lookback window (late rows arrive for recent days), lies in an explicit --since/--until
range, or the table's schema changed since it was published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .manifest import TableManifest

__all__ = ["Job", "day_bounds", "plan_table"]


@dataclass(frozen=True)
class Job:
    site: str
    table: str
    date: date
    start: datetime
    """First instant of the local day, in UTC."""
    end: datetime
    """First instant of the next local day, in UTC (exclusive)."""
    complete: bool
    """The day is over (plus the settle margin): no more rows are expected."""
    reason: str
    fingerprint: dict[str, object] | None = None
    """The source's fingerprint of the day when a full check computed it."""

    @property
    def day(self) -> str:
        return self.date.isoformat()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The half-open UTC interval of a local day (DST-safe: 23 to 25 hours)."""
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def plan_table(
    *,
    site: str,
    table: str,
    timezone: str,
    extent: tuple[datetime, datetime] | None,
    published: TableManifest | None,
    schema_hash: str,
    now: datetime,
    settle: timedelta,
    lookback_days: int,
    since: date | None = None,
    until: date | None = None,
    rebuild: bool = False,
    fingerprints: dict[str, dict[str, object]] | None = None,
    pending: dict[str, str] | None = None,
) -> list[Job]:
    """The days of one table to export, oldest first.

    `fingerprints` (from a full check of the source) adds every published day whose source
    content changed, and every published day that has no rows any more. `pending` (date ->
    reason) adds the days an interrupted run had planned and not finished.
    """
    zone = ZoneInfo(timezone)
    done = {p.date: p for p in (published.partitions if published else ())}
    days: set[date] = set()
    if extent is not None:
        first = extent[0].astimezone(zone).date()
        last = extent[1].astimezone(zone).date()
        days = {first + timedelta(days=i) for i in range((last - first).days + 1)}
    if fingerprints is not None:
        days |= {date.fromisoformat(d) for d in done}
    days = {d for d in days if (not since or d >= since) and (not until or d <= until)}
    unfinished = {date.fromisoformat(d): r for d, r in (pending or {}).items()}
    days |= set(unfinished)
    explicit = since is not None or until is not None
    if published is not None and published.schema_hash != schema_hash:
        rebuild = True
    recent = now.astimezone(zone).date() - timedelta(days=lookback_days)

    jobs = []
    for day in sorted(days):
        start, end = day_bounds(day, zone)
        previous = done.get(day.isoformat())
        source = fingerprints.get(day.isoformat()) if fingerprints is not None else None
        if rebuild:
            reason = "rebuild"
        elif explicit:
            reason = "requested range"
        elif previous is None:
            reason = "new day"
        elif not previous.complete:
            reason = "incomplete when published"
        elif day > recent:
            reason = "inside lookback window"
        elif fingerprints is not None and source != previous.fingerprint:
            reason = "source changed" if source else "no rows any more"
        else:
            reason = unfinished.get(day, "")
        if reason:
            complete = now >= end + settle
            jobs.append(Job(site, table, day, start, end, complete, reason, source))
    return jobs
