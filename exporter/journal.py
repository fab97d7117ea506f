"""The per-site publish journal: intent recorded before a stable-name file is overwritten.

A re-exported day keeps its file names, so its new file replaces the one the live manifest
describes. To keep every published file accounted for, a run writes
``sites/<site>/journal.json`` before it overwrites anything, naming

- ``changes``: the new manifest entry (sha256, bytes, rows, ...) of every day whose files
  it is about to replace, until a committed manifest names them;
- ``pending``: the days the run set out to export and has not committed yet, so that the
  next run, whatever its options, finishes them;
- ``obsolete``: files of days that left the manifest, deleted at the end of the run.

The reader rule (README, "Publishing"): a data file is good when its sha256 is the one its
site manifest gives, or the one the site's journal gives in ``changes``.

A run that finds a journal first rolls it forward or back (`recover`): each changed day
takes the entry its files now match (the new one, or the old one it kept); a day whose
files match neither (one format replaced, the other not) leaves the manifest and is
exported again as a new day.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from .layout import journal_key
from .manifest import Partition, SiteManifest

if TYPE_CHECKING:
    from .storage import Target

__all__ = [
    "Journal",
    "PendingDay",
    "Recovery",
    "parse_journal",
    "peek_journal",
    "read_journal",
    "recover",
]

JSON_TYPE = "application/json"


class PendingDay(msgspec.Struct, frozen=True):
    table: str
    date: str
    reason: str


class Journal(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = 1
    site: str
    owner: str
    written_at: str
    pending: list[PendingDay] = []
    changes: dict[str, list[Partition]] = {}
    schemas: dict[str, str] = {}
    """The schema_hash of each table's changed entries (a rebuilt table may change it)."""
    obsolete: list[str] = []

    def change(self, table: str, date: str) -> Partition | None:
        """The new entry the journal gives for a day, if its files are being replaced."""
        return next((p for p in self.changes.get(table, ()) if p.date == date), None)

    @property
    def empty(self) -> bool:
        return not (self.pending or self.changes or self.obsolete)

    def to_json(self) -> bytes:
        return msgspec.json.encode(self) + b"\n"


@functools.cache
def _decoder() -> msgspec.json.Decoder[Journal]:
    return msgspec.json.Decoder(Journal)


def parse_journal(raw: bytes) -> Journal:
    """A journal from its JSON; ValueError (naming the fault) if it is not one."""
    try:
        return _decoder().decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


class DamagedJournal(Exception):
    """The journal exists but cannot be read: every file of the site must be checked."""


def read_journal(target: Target, site: str) -> Journal | None:
    """The site's journal, None when there is none; DamagedJournal when unreadable."""
    raw = target.get(journal_key(site))
    if raw is None:
        return None
    try:
        return parse_journal(raw)
    except ValueError as exc:
        raise DamagedJournal(f"{target.url(journal_key(site))}: {exc}") from None


def peek_journal(target: Target, site: str) -> Journal | None:
    """The site's journal as it is (for a dry run: nothing is changed)."""
    try:
        return read_journal(target, site)
    except DamagedJournal:
        return None


@dataclass(frozen=True)
class Recovery:
    manifest: SiteManifest | None
    """The manifest that describes the files as they now are."""
    rolled_forward: tuple[str, ...] = ()
    """table/day entries that took their journal entry."""
    dropped: tuple[str, ...] = ()
    """table/day entries whose files matched neither entry: exported again."""
    obsolete: tuple[str, ...] = ()
    """Keys to delete once no manifest names them."""
    pending: tuple[PendingDay, ...] = ()


def stored_sha256(target: Target, key: str) -> str | None:
    """The sha256 of the object under `key` (None if absent): from the metadata the target
    records where it can, else by reading it."""
    info = target.head(key)
    if info is None:
        return None
    if info.sha256 is not None:
        return info.sha256
    data = target.get(key)
    return None if data is None else hashlib.sha256(data).hexdigest()


def recover(target: Target, manifest: SiteManifest | None, journal: Journal | None) -> Recovery:
    """Make the manifest describe the files as they are, using the journal's knowledge.

    `journal` None means the journal was damaged: every day of the manifest is checked.
    No data file is written or deleted here: the caller commits the manifest, then deletes
    `obsolete` keys that the committed manifest does not name.
    """
    tables = dict(manifest.tables) if manifest else {}
    forward: list[str] = []
    dropped: list[str] = []
    obsolete: set[str] = set(journal.obsolete) if journal else set()
    if journal is None:
        suspects = {name: [p.date for p in t.partitions] for name, t in tables.items()}
    else:
        suspects = {name: [p.date for p in days] for name, days in journal.changes.items()}
    for name, dates in suspects.items():
        table = tables.get(name)
        # A day of a table whose schema changed cannot join the old table's entries.
        joins = (
            journal is not None
            and table is not None
            and (journal.schemas.get(name, table.schema_hash) == table.schema_hash)
        )
        for day in dates:
            old = table.partition(day) if table else None
            new = journal.change(name, day) if journal else None
            keys = {f.path for p in (old, new) if p for f in p.files.values()}
            found = {key: stored_sha256(target, key) for key in sorted(keys)}
            if new is not None and joins and _matches(new, found):
                tables[name] = tables[name].with_partitions([new])
                forward.append(f"{name}/{day}")
            elif old is not None and _matches(old, found):
                continue
            else:
                if old is not None:
                    kept = tuple(p for p in tables[name].partitions if p.date != day)
                    tables[name] = replace(tables[name], partitions=kept)
                dropped.append(f"{name}/{day}")
                obsolete |= keys
    result = manifest
    if manifest is not None and (forward or dropped):
        result = replace(manifest, tables=tables)
    return Recovery(
        result,
        tuple(forward),
        tuple(dropped),
        tuple(sorted(obsolete)),
        tuple(journal.pending) if journal else (),
    )


def _matches(entry: Partition, found: dict[str, str | None]) -> bool:
    return all(found.get(f.path) == f.sha256 for f in entry.files.values())


# Reasons a plain run finds again by itself: a journal need not remember those days.
REPEATED_REASONS = frozenset({"new day", "incomplete when published", "inside lookback window"})


class SiteJournal:
    """The journal of one run on one site, written only when it has something to say.

    Written before the first overwrite of a file the live manifest names, and at the start
    when the run has days that a plain run would not export again (a rebuild, a range, a
    full check's findings) or carries an interrupted run's leftovers; rewritten after each
    manifest commit; deleted when nothing is left in it.
    """

    def __init__(self, target: Target, site: str, owner: str, carried: Journal | None) -> None:
        self.target, self.site, self.owner = target, site, owner
        self.exists = carried is not None
        self.pending: dict[tuple[str, str], str] = {
            (p.table, p.date): p.reason for p in (carried.pending if carried else ())
        }
        self.changes: dict[str, dict[str, Partition]] = {}
        self.schemas: dict[str, str] = {}
        self.obsolete: set[str] = set(carried.obsolete) if carried else set()
        self.leftover: set[str] = set(self.obsolete)
        """Obsolete keys an earlier run left (the others are this run's emptied days)."""

    def begin(self, days: list[tuple[str, str, str]]) -> None:
        """Record the run's (table, date, reason) days; written now if a plain run would
        not export them again."""
        self.pending.update({(t, d): r for t, d, r in days})
        if self.exists or any(r not in REPEATED_REASONS for _, _, r in days):
            self.write()

    def intend(self, table: str, schema_hash: str, entry: Partition) -> None:
        """Durably name a day's new entry before its files replace the published ones."""
        self.changes.setdefault(table, {})[entry.date] = entry
        self.schemas[table] = schema_hash
        self.write()

    def retire(self, keys: list[str]) -> None:
        """Durably list files about to leave the manifest (deleted at the end of the run)."""
        if keys:
            self.obsolete.update(keys)
            self.write()

    def committed(self, manifest: SiteManifest, done: list[tuple[str, str]]) -> None:
        """After a manifest commit: forget what it names, keep what is still in flux."""
        for table, day in done:
            self.pending.pop((table, day), None)
        for table, days in list(self.changes.items()):
            named = manifest.tables.get(table)
            for day, entry in list(days.items()):
                if named is not None and named.partition(day) == entry:
                    del days[day]
            if not days:
                del self.changes[table]
                self.schemas.pop(table, None)
        self._sync()

    def deleted(self, keys: list[str]) -> None:
        """The obsolete `keys` are gone (or named again): the journal forgets them."""
        self.obsolete -= set(keys)
        self._sync()

    def document(self) -> Journal:
        return Journal(
            site=self.site,
            owner=self.owner,
            written_at=_utc_now(),
            pending=[PendingDay(t, d, r) for (t, d), r in sorted(self.pending.items())],
            changes={
                t: [days[d] for d in sorted(days)] for t, days in sorted(self.changes.items())
            },
            schemas=dict(sorted(self.schemas.items())),
            obsolete=sorted(self.obsolete),
        )

    def write(self) -> None:
        self.target.put(
            journal_key(self.site), self.document().to_json(), JSON_TYPE, cache_control="no-cache"
        )
        self.exists = True

    def _sync(self) -> None:
        if self.pending or self.changes or self.obsolete:
            if self.exists:
                self.write()
        elif self.exists:
            self.target.delete(journal_key(self.site))
            self.exists = False


def _utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
