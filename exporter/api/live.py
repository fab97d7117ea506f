"""One shared `Dataset` that follows the publishes: re-opened when the catalog changes.

Requests lease the current Dataset for as long as they read from it (a download may stream
for minutes). When a check (at most every `refresh_seconds`, made by whichever request finds
the last one too old) finds different catalog bytes, a new Dataset is opened and later
requests use it; the old one is closed when its last lease ends. Within one Dataset the
publish journal's reader rule (in `Dataset`) keeps every answer consistent while a publish
replaces files.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..catalog import parse_catalog
from ..config import S3Options
from ..layout import CATALOG_KEY
from ..query import Dataset
from ..storage import open_reader

__all__ = ["LiveDataset", "Snapshot", "open_dataset"]


@dataclass
class Snapshot:
    """A Dataset with the catalog it was opened from."""

    dataset: Dataset
    catalog_sha256: str
    generated_at: datetime | None
    site_shas: dict[str, str]
    opened_at: float
    leases: int = 0
    retired: bool = False


def open_dataset(uri: str, cache_dir: str | None = None, s3: S3Options | None = None) -> Dataset:
    """The Dataset a server reads: one DuckDB thread per query. A page reads a few row
    groups, where more threads cost more to start than they save; the server's
    concurrency comes from answering several requests at once."""
    return Dataset.open(uri, target=open_reader(uri, s3), cache_dir=cache_dir, threads=1)


def _catalog_facts(raw: bytes | None) -> tuple[str, datetime | None, dict[str, str]]:
    digest = hashlib.sha256(raw or b"").hexdigest()
    generated, shas = None, {}
    with contextlib.suppress(KeyError, TypeError, AttributeError, ValueError):
        document = parse_catalog(raw) or {}  # a damaged catalog: no facts, not an error
        generated = datetime.fromisoformat(document["generated_at"].replace("Z", "+00:00"))
        shas = {entry["site"]: entry["sha256"] for entry in document["sites"]}
    return digest, generated, shas


class LiveDataset:
    """The current Dataset of a published root, re-opened when its catalog changes."""

    def __init__(
        self,
        uri: str,
        *,
        refresh_seconds: float = 5.0,
        opener: Callable[[str], Dataset] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self.refresh_seconds = refresh_seconds
        self._open = opener or open_dataset
        self._clock = clock
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._checked_at = clock()
        self.reopened = 0
        self._snapshot = self._load()

    def _load(self) -> Snapshot:
        dataset = self._open(self.uri)
        digest, generated, shas = _catalog_facts(dataset.target.get(CATALOG_KEY))
        return Snapshot(dataset, digest, generated, shas, self._clock())

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def due(self) -> bool:
        return self._clock() - self._checked_at >= self.refresh_seconds

    def refresh(self, force: bool = False) -> bool:
        """Re-open if the catalog changed (checked at most every `refresh_seconds`)."""
        now = self._clock()
        if not force and now - self._checked_at < self.refresh_seconds:
            return False
        if not self._checking.acquire(blocking=False):
            return False  # another request is checking: use what there is
        try:
            self._checked_at = now
            current = self._snapshot
            raw = current.dataset.target.get(CATALOG_KEY)
            if raw is None or hashlib.sha256(raw).hexdigest() == current.catalog_sha256:
                return False  # a root mid-rewrite without a catalog keeps the last view
            fresh = self._load()
            with self._lock:
                old, self._snapshot = self._snapshot, fresh
                old.retired = True
                close = old.leases == 0
                self.reopened += 1
            if close:
                old.dataset.close()
            return True
        finally:
            self._checking.release()

    @contextlib.contextmanager
    def lease(self) -> Iterator[Snapshot]:
        """The current snapshot, kept open until the block ends."""
        with self._lock:
            snapshot = self._snapshot
            snapshot.leases += 1
        try:
            yield snapshot
        finally:
            with self._lock:
                snapshot.leases -= 1
                close = snapshot.retired and snapshot.leases == 0
            if close:
                snapshot.dataset.close()

    def health(self) -> dict[str, Any]:
        snap = self._snapshot
        now = datetime.now(UTC)
        age = (now - snap.generated_at).total_seconds() if snap.generated_at else None
        return {
            "status": "ok" if not snap.dataset.damaged else "degraded",
            "catalog_sha256": snap.catalog_sha256,
            "catalog_generated_at": snap.generated_at.isoformat() if snap.generated_at else None,
            "catalog_age_seconds": round(age, 3) if age is not None else None,
            "checked_seconds_ago": round(self._clock() - self._checked_at, 3),
            "sites": sorted(snap.dataset.manifests),
            "damaged_sites": sorted(snap.dataset.damaged),
            "publish_in_progress": sorted(snap.dataset.journals),
            "reopened": self.reopened,
        }

    def close(self) -> None:
        with self._lock:
            snapshot = self._snapshot
            snapshot.retired = True
            close = snapshot.leases == 0
        if close:
            snapshot.dataset.close()
