"""Are a target's pages what a full render of its catalog and manifests gives now?"""

from __future__ import annotations

import re

from exporter.catalog import read_catalog, read_manifest
from exporter.site import render_site, rendered_tables
from exporter.site.preview import read_previews
from exporter.storage import Target

# The footer's "updated" time: a page nothing changed keeps the time it was rendered at.
_UPDATED = re.compile(rb'<time datetime="[0-9T:-]+Z">[^<]*</time>')
_PAGE = re.compile(r"(\.html|/urls-[a-z]+\.txt)$")  # the pages and the months' URL lists


def stale_pages(target: Target) -> list[str]:
    """Keys of pages that are missing or differ from a full render (the footer time aside),
    and of pages under sites/ that a full render does not write (left behind)."""
    found = read_catalog(target)
    if found is None:
        return []
    catalog, sites = found
    manifests = {}
    for site in sites:
        manifest = read_manifest(target, site)
        if manifest is not None:
            manifests[site] = manifest
    stale = []
    everything = rendered_tables(manifests, None)
    pages = render_site(catalog, manifests, previews=read_previews(target, manifests, everything))
    for key, html in pages.items():
        stored = target.get(key)
        if stored is None or _UPDATED.sub(b"", stored) != _UPDATED.sub(b"", html):
            stale.append(key)
    left = [k for k in target.list("sites/") if _PAGE.search(k) and k not in pages]
    return stale + left
