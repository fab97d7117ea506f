"""The commit protocol's writes: data files (verified), site manifests, the catalog.

Readers follow catalog.json -> sites/<site>/manifest.json -> files. So a file is named by a
manifest only once it is in place and verified, a manifest is listed by the catalog only
once it exists, and the catalog (shared by concurrent per-site runs) is updated with a
conditional write that is retried on conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .catalog import (
    DamagedManifest,
    listed_sites,
    parse_catalog,
    read_published,
    still_published,
    unlisted_sites,
)
from .config import Config
from .errors import PublishError
from .layout import CATALOG_KEY, DATAPACKAGE_KEY, DOCUMENT_CACHE, manifest_key
from .manifest import (
    Partition,
    Published,
    SiteManifest,
    build_catalog,
    build_datapackage,
    site_manifest_json,
    to_json,
)
from .storage import Target

if TYPE_CHECKING:
    from .write import EncodedPartition

__all__ = ["commit_catalog", "commit_site", "put_partition", "utc_now"]

JSON_TYPE = "application/json"
# A finished day rarely changes; one still going on changes with the next run.
COMPLETE_CACHE = "public, max-age=86400"
INCOMPLETE_CACHE = "public, max-age=300"
CATALOG_ATTEMPTS = 10


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def put_partition(
    target: Target, partition: EncodedPartition, previous: Partition | None, complete: bool
) -> int:
    """Upload the files whose content differs from the published entry, then verify them.

    Returns the bytes uploaded (0 when the day's files are unchanged).
    """
    sent = 0
    for fmt, file in partition.files.items():
        published = previous.files.get(fmt) if previous else None
        if published is not None and published.sha256 == file.sha256:
            continue  # the hash decides: same bytes, nothing to send (the caller discards)
        cache = COMPLETE_CACHE if complete else INCOMPLETE_CACHE
        target.put_file(file.key, file.path, file.content_type, cache_control=cache)
        if not target.stored(file.key, file.size, file.sha256):
            raise PublishError(
                f"{target.url(file.key)}: the stored object does not match what was sent "
                "(size or sha256); run again"
            )
        sent += file.size
    return sent


def commit_site(target: Target, manifest: SiteManifest) -> Published:
    """Name the site's (already verified) files: the publish of this site takes effect."""
    raw = site_manifest_json(manifest)
    target.put(manifest_key(manifest.site), raw, JSON_TYPE, cache_control=DOCUMENT_CACHE)
    return Published(manifest, hashlib.sha256(raw).hexdigest())


# Called with the new catalog, its manifests and the catalog it replaces (None: the first)
# before the catalog is written: the pages.
BeforeCatalog = Callable[[dict[str, Any], dict[str, SiteManifest], dict[str, Any] | None], object]


def commit_catalog(
    target: Target,
    config: Config,
    sites: list[str],
    before: BeforeCatalog | None = None,
    known: dict[str, Published | None] | None = None,
    generator: dict[str, str] | None = None,
) -> None:
    """Update catalog.json and datapackage.json for `sites`, keeping every other site.

    Runs for different sites publish concurrently, so the catalog is written only if it is
    unchanged since we read it (If-Match); on a conflict we re-read and merge again.
    `known` manifests (this run's own) are checked with a HEAD instead of read again.
    Derived documents (data package, `before`: the pages) are written first, so that a run
    interrupted in between finds the catalog still out of date and writes them again.
    """
    known = known or {}
    for _ in range(CATALOG_ATTEMPTS):
        found = target.get_tagged(CATALOG_KEY)
        previous, tag = found if found else (None, None)
        old = parse_catalog(previous)
        listed = sorted(listed_sites(old) | set(sites) | unlisted_sites(target, previous, old))
        manifests: dict[str, Published] = {}
        damaged = []
        for site in listed:
            try:
                current = (
                    still_published(target, site, known[site])
                    if site in known
                    else read_published(target, site)
                )
            except DamagedManifest:
                damaged.append(site)  # its entry stays as it was, until the site is rebuilt
                continue
            if current is not None:
                manifests[site] = current
        if not manifests and previous is None:
            return  # nothing was ever published: no empty catalog either
        catalog = build_catalog(config, manifests, utc_now(), generator)
        kept = [e for e in (old or {}).get("sites", []) if e.get("site") in damaged]
        catalog["sites"] = sorted(catalog["sites"] + kept, key=lambda e: e["site"])
        if old is not None and {**old, "generated_at": None} == {**catalog, "generated_at": None}:
            return  # already what we would write: a no-op run rewrites nothing
        datapackage = build_datapackage(config, [p.manifest for p in manifests.values()])
        target.put(
            DATAPACKAGE_KEY,
            to_json(datapackage, compact=True),
            JSON_TYPE,
            cache_control=DOCUMENT_CACHE,
        )
        if before is not None:
            before(catalog, {site: p.manifest for site, p in manifests.items()}, old)
        if target.put_if(
            CATALOG_KEY, to_json(catalog), JSON_TYPE, tag=tag, cache_control=DOCUMENT_CACHE
        ):
            return
    raise PublishError(
        f"{target.url(CATALOG_KEY)}: still changing after {CATALOG_ATTEMPTS} attempts "
        "(many concurrent runs?); run again"
    )
