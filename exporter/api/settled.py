"""Replies that read several days come from one publish: never some days old, some new.

A publish replaces a day's files under their own names, one day after another, and names
the days it is replacing in the site's journal from before the first is touched until its
manifest is committed. So a read of several days is of one publish when, both before and
after it, the journal names none of those days and the site manifest has the same bytes.
A read that starts while a publish replaces its days first waits for the publish to end.
(One day is one file, read by one query, so it needs none of this.)
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, datetime

from ..journal import peek_journal
from ..layout import manifest_key
from ..query import Dataset

__all__ = ["SETTLE_SECONDS", "settled", "state", "window_days"]

SETTLE_SECONDS = 30.0  # the longest a read waits for a publish of its days to end
_POLL = 0.25


def window_days(
    dataset: Dataset, site: str, table: str, window: tuple[datetime | None, datetime | None]
) -> list[str]:
    """The published days of the table that the (naive local) window meets."""
    manifest = dataset.manifests.get(site)
    entry = manifest.tables.get(table) if manifest else None
    if entry is None:
        return []
    low, high = window
    days = sorted(p.date for p in entry.partitions)
    if low is not None and high is not None and high < low:
        return []
    first = low.date() if low else date.min
    last = high.date() if high else date.max
    return [d for d in days if first <= date.fromisoformat(d) <= last]


def state(dataset: Dataset, site: str, table: str, days: list[str]) -> str | None:
    """The site manifest's digest, or None while a publish is replacing one of `days`."""
    journal = peek_journal(dataset.target, site)
    if journal is not None and {p.date for p in journal.changes.get(table, ())} & set(days):
        return None
    return hashlib.sha256(dataset.target.get(manifest_key(site)) or b"").hexdigest()


def settled(
    dataset: Dataset, site: str, table: str, days: list[str], wait: float = SETTLE_SECONDS
) -> str | None:
    """`state` once no publish is replacing `days` (None if one still is after `wait` s)."""
    deadline = time.monotonic() + wait
    while (found := state(dataset, site, table, days)) is None and time.monotonic() < deadline:
        time.sleep(_POLL)
    return found
