"""Putting the pages on a target: only those whose bytes changed, and deleting gone ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from ..catalog import DamagedManifest, read_catalog, read_manifest
from ..errors import PublishError
from ..journal import peek_journal
from ..layout import CATALOG_KEY, DOCUMENT_CACHE, journal_key
from ..manifest import SiteManifest
from ..storage import Target
from .assets import put_assets
from .changes import Selection, SiteChanges
from .data import check_name
from .preview import read_previews
from .render import PAGES, page_keys, render_site, rendered_tables
from .templates import HTML_TYPE, TEXT_TYPE

__all__ = ["build_site", "gone_pages", "put_pages"]


def build_site(target: Target) -> tuple[int, int]:
    """Render the index from the target's catalog and manifests; put the changed pages and
    delete the pages of months and tables no manifest has any more.

    Returns the numbers of pages written and deleted ((0, 0) when nothing changed or nothing
    is published).
    """
    found = read_catalog(target)  # a damaged catalog: one line saying what to run
    if found is None:
        return 0, 0
    catalog, entries = found
    manifests, damaged = {}, {}
    for site in entries:
        try:
            manifest = read_manifest(target, check_name("site", site, CATALOG_KEY))
        except DamagedManifest as exc:
            damaged[site] = str(exc)  # its pages stay as they are; the others are rendered
            continue
        journal = peek_journal(target, site)
        if journal is not None and journal.changes:
            # Its files may be either version: the pages wait for the manifest that settles it.
            damaged[site] = (
                f"site {site} has a publish in flux ({journal_key(site)}); finish it with "
                f"`ess-export run --site {site}`, which also renders its pages"
            )
            continue
        if manifest is not None:
            manifests[site] = manifest
    shown = {**catalog, "sites": [e for e in catalog["sites"] if e["site"] not in damaged]}
    # A full render: every other page under sites/ belongs to a month or table that is gone.
    names = {page.name for page in PAGES}
    listed = [
        key
        for key in target.list("sites/")
        if key.rsplit("/", 1)[-1] in names and key.split("/")[1] not in damaged
    ]
    written, deleted = put_pages(target, shown, manifests, drop=listed)
    if damaged:
        raise PublishError(
            f"wrote {written} page(s) of the other sites; " + next(iter(damaged.values()))
        )
    return written, deleted


def gone_pages(changes: Iterable[SiteChanges]) -> list[str]:
    """The keys of the pages of the months and tables a run's `changes` emptied."""
    return [key for change in changes for place in change.gone for key in page_keys(*place)]


def put_pages(
    target: Target,
    catalog: dict[str, Any],
    manifests: dict[str, SiteManifest],
    only: Selection | None = None,
    drop: Iterable[str] = (),
) -> tuple[int, int]:
    """Render and put the pages (`only` these) whose bytes differ from the target's, then
    delete the `drop` pages this render did not write (after the puts: no page put links to
    them any more). Returns how many pages were written and how many deleted.

    (Sending pages from a thread while the next one renders measured no faster: that
    thread waits for the interpreter lock on every response.)"""
    put_assets(target)  # the scripts the pages load, before any page that loads them
    written = deleted = 0
    previews = read_previews(target, manifests, rendered_tables(manifests, only))
    pages = render_site(catalog, manifests, only, previews)
    for key, body in pages.items():
        info = target.head(key)
        if info is None or info.sha256 != hashlib.sha256(body).hexdigest():
            kind = HTML_TYPE if key.endswith(".html") else TEXT_TYPE
            target.put(key, body, kind, cache_control=DOCUMENT_CACHE)
            written += 1
    for key in sorted(set(drop) - pages.keys()):
        target.delete(key)
        deleted += 1
    return written, deleted
