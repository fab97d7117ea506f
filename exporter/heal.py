"""Runs heal: an interrupted run's journal is rolled forward or back before planning.

The roll itself is `journal.recover`; this module holds the lease while it runs, commits
the manifest it gives, and deletes, at the end of a run, the files that no manifest names
any more.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from .catalog import DamagedManifest, read_published
from .journal import (
    DamagedJournal,
    Journal,
    Recovery,
    SiteJournal,
    read_journal,
    recover,
)
from .layout import journal_key
from .lock import site_lease
from .manifest import Published, SiteManifest
from .publish import commit_site, utc_now

if TYPE_CHECKING:
    from .storage import Target

__all__ = ["heal", "named_keys", "recover_site", "retire_files"]


def heal(target: Target, site: str, length: timedelta) -> tuple[Journal | None, Recovery | None]:
    """Before planning: roll back or forward what an interrupted run left in flux.

    Costs one read when there is no journal; takes the site's lease only when the journal
    names files in flux (or cannot be read). Returns the journal left (days still to
    export, files to delete) and what the roll did.
    """
    journal, in_flux = _journal_state(target, site)
    if not in_flux:
        return journal, None
    with site_lease(target, site, length):
        return recover_site(target, site)


def _journal_state(target: Target, site: str) -> tuple[Journal | None, bool]:
    """The site's journal, and whether it names files in flux (a journal that cannot be
    read does too: every file of the site is then checked)."""
    try:
        journal = read_journal(target, site)
    except DamagedJournal:
        return None, True
    return journal, journal is not None and bool(journal.changes)


def recover_site(target: Target, site: str) -> tuple[Journal | None, Recovery | None]:
    """Under the site's lease: make the manifest describe the files as they are."""
    try:
        journal = read_journal(target, site)
    except DamagedJournal:
        journal, damaged = None, True
    else:
        damaged = False
        if journal is None or not journal.changes:
            return journal, None
    try:
        published = read_published(target, site)
    except DamagedManifest:
        published = None  # nothing to roll into: a rebuild makes the site anew
    manifest = published.manifest if published else None
    found = recover(target, manifest, journal)
    if found.manifest is not None and found.manifest is not manifest:
        commit_site(target, replace(found.manifest, generated_at=utc_now()))
    named = named_keys(found.manifest)
    left = Journal(
        site=site,
        owner=journal.owner if journal else "",
        written_at=utc_now(),
        pending=list(found.pending),
        obsolete=[key for key in found.obsolete if key not in named],
    )
    if left.empty:
        target.delete(journal_key(site))
        return None, found
    target.put(journal_key(site), left.to_json(), "application/json", cache_control="no-cache")
    return left, found if (found.rolled_forward or found.dropped or damaged) else None


def named_keys(manifest: SiteManifest | None) -> set[str]:
    tables = manifest.tables.values() if manifest else ()
    return {f.path for t in tables for p in t.partitions for f in p.files.values()}


def retire_files(
    target: Target, journal: SiteJournal, published: Published | None
) -> tuple[list[str], list[str]]:
    """Delete the journal's obsolete files that the published manifest does not name
    (a day re-exported under the same key is named again). Returns (emptied, leftover):
    this run's emptied days' files, and those an earlier run left."""
    named = named_keys(published.manifest if published else None)
    keys = sorted(k for k in journal.obsolete if k not in named)
    for key in keys:
        target.delete(key)
    journal.deleted(sorted(journal.obsolete))
    return [k for k in keys if k not in journal.leftover], [
        k for k in keys if k in journal.leftover
    ]
