"""How long a reply stays true, its ETag, and the per-snapshot cache of list replies.

A reply reads the days its window touches. Its ETag is a digest of what decides its bytes:
the table's schema hash, the Parquet sha256 of each of those days (from the manifest the
snapshot was opened with) and the request, normalized. A reply whose window lies wholly in
days the manifest marks ``"complete": true`` will not change: ``immutable`` for a year.
Any other reply (an open-ended window, a day not yet published or not yet complete) gets a
short max-age. A reply reading a day a publish is replacing (in the site's journal) may come
from either version: it gets neither an ETag nor a place in the cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..query import Dataset

__all__ = ["IMMUTABLE", "Freshness", "ReplyCache", "freshness", "normalized_query"]

IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Freshness:
    etag: str | None
    cache_control: str

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Cache-Control": self.cache_control}
        if self.etag:
            headers["ETag"] = self.etag
        return headers


def normalized_query(items: list[tuple[str, str]]) -> str:
    """The decoded pairs sorted by key (stable): the reply is the same in any order, as
    DRF's links sort the keys and a repeated key keeps its values' order."""
    ordered = sorted(items, key=lambda pair: pair[0])
    return "&".join(f"{k}={v}" for k, v in ordered).replace("\n", "%0A")


def _days(
    low: datetime | None, high: datetime | None, first: str, last: str
) -> tuple[list[str], bool]:
    """The published range's days the window meets, and whether it reaches beyond that
    range (where a later publish may add days)."""
    first_day, last_day = date.fromisoformat(first), date.fromisoformat(last)
    start = max(low.date(), first_day) if low else first_day
    end = min(high.date(), last_day) if high else last_day
    beyond = low is None or high is None or low.date() < first_day or high.date() > last_day
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return days, beyond


def freshness(
    dataset: Dataset,
    site: str,
    table: str,
    low: datetime | None,
    high: datetime | None,
    request_key: str,
    max_age: int,
) -> Freshness:
    """The reply's ETag and Cache-Control, from the manifest entries its window reads."""
    short = f"public, max-age={max_age}"
    manifest = dataset.manifests.get(site)
    entry = manifest.tables.get(table) if manifest else None
    if entry is None or not entry.partitions:
        return Freshness(None, short)
    by_day = {p.date: p for p in entry.partitions}
    days = sorted(by_day)
    if low is not None and high is not None and high < low:
        wanted: list[str] = []
        beyond = False  # an empty reply, whatever is published
    else:
        wanted, beyond = _days(low, high, days[0], days[-1])
    journal = dataset.journals.get(site)
    in_flux = {p.date for p in journal.changes.get(table, ())} if journal else set()
    if in_flux.intersection(wanted):
        return Freshness(None, short)
    digest = hashlib.sha256(f"{site}\n{table}\n{entry.schema_hash}\n{request_key}\n".encode())
    complete = not beyond
    for day in wanted:
        partition = by_day.get(day)
        if partition is None or "parquet" not in partition.files:
            complete = False
            continue
        complete = complete and partition.complete
        digest.update(f"{day} {partition.files['parquet'].sha256}\n".encode())
    return Freshness(f'"{digest.hexdigest()[:40]}"', IMMUTABLE if complete else short)


@dataclass(frozen=True)
class CachedReply:
    body: bytes
    freshness: Freshness


class ReplyCache:
    """List replies of the current snapshot, least recently used first out, up to `capacity`
    bytes; emptied when the snapshot changes."""

    def __init__(self, capacity: int = 64 * 2**20) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, CachedReply] = OrderedDict()
        self._snapshot = ""
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, snapshot: str, key: str) -> CachedReply | None:
        with self._lock:
            found = self._entries.get(key) if snapshot == self._snapshot else None
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, snapshot: str, key: str, reply: CachedReply) -> None:
        size = len(reply.body)
        if reply.freshness.etag is None or size > self.capacity // 8:
            return  # a reply of a day in flux, or one that would push out many others
        with self._lock:
            if snapshot != self._snapshot:
                self._entries.clear()
                self._snapshot, self._bytes = snapshot, 0
            old = self._entries.pop(key, None)
            self._bytes += size - (len(old.body) if old else 0)
            self._entries[key] = reply
            while self._bytes > self.capacity:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.body)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "entries": len(self._entries),
                "bytes": self._bytes,
            }
