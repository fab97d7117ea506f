"""Replies that read several days come from one publish: never some days old, some new.

A publish replaces a day's files under their own names, one day after another, and names
the days it is replacing in the site's journal from before the first is touched until its
manifest is committed. So a read of several days is of one publish when, both before and
after it, the journal names none of those days and the site manifest has the same bytes.
A read that starts while a publish replaces its days first waits for the publish to end.
One day needs this too: the `Dataset` holds the manifest of the last catalog it saw, while
a publish may already have renamed that day's new file in (and committed its manifest);
`follow` brings the Dataset's manifest up to the one on the target before the read, so a
page's count and its rows come from the same file.
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, datetime

from ..catalog import read_manifest
from ..journal import peek_journal
from ..layout import manifest_key
from ..query import Dataset

__all__ = ["SETTLE_SECONDS", "follow", "settled", "state", "window_days"]

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


def follow(dataset: Dataset, site: str, table: str, days: list[str]) -> None:
    """Make `dataset` read `days` of the table as the target's manifest names them now (call
    it once `settled`: no publish is replacing them)."""
    held = dataset.manifests.get(site)
    current = read_manifest(dataset.target, site)
    if held is None or current is None or table not in current.tables:
        return
    old, new = held.tables.get(table), current.tables[table]
    if old is None or any(old.partition(d) != new.partition(d) for d in days):
        dataset.manifests[site] = current  # one assignment: other readers see old or new
