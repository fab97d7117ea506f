"""The commit protocol: data files first, then the site manifest, then the root documents.

Readers follow catalog.json -> sites/<site>/manifest.json -> files, so a file is named by a
manifest only once it is in place, and the catalog only lists manifests that exist.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from .config import Config
from .errors import PublishError
from .manifest import (
    SiteManifest,
    build_catalog,
    build_datapackage,
    manifest_key,
    to_json,
)
from .storage import Target
from .write import EncodedPartition

__all__ = [
    "CATALOG_KEY",
    "DATAPACKAGE_KEY",
    "commit_catalog",
    "commit_site",
    "put_partition",
    "read_manifest",
]

CATALOG_KEY = "catalog.json"
DATAPACKAGE_KEY = "datapackage.json"
JSON_TYPE = "application/json"


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def put_partition(target: Target, partition: EncodedPartition) -> int:
    """Upload a partition's files; returns the bytes written."""
    for file in partition.files.values():
        target.put(file.key, file.data, file.content_type)
    return sum(f.size for f in partition.files.values())


def read_manifest(target: Target, site: str) -> SiteManifest | None:
    """The published manifest of a site, or None before its first publish."""
    key = manifest_key(site)
    raw = target.get(key)
    if raw is None:
        return None
    try:
        return SiteManifest.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(
            f"{target.uri}/{key} is not a valid manifest ({exc}); re-export the site with --rebuild"
        ) from None


def commit_site(target: Target, manifest: SiteManifest) -> None:
    """Name the site's (already written) files: the publish of this site takes effect."""
    target.put(manifest_key(manifest.site), to_json(manifest.to_dict()), JSON_TYPE)


def commit_catalog(target: Target, config: Config, sites: list[str]) -> None:
    """Rewrite catalog.json and datapackage.json over every published site manifest.

    Sites published earlier but not part of this run stay listed.
    """
    listed = set(sites)
    previous = target.get(CATALOG_KEY)
    # A damaged catalog is simply rebuilt from the manifests of this run's sites.
    with contextlib.suppress(ValueError, KeyError, TypeError):
        listed |= {entry["site"] for entry in json.loads(previous or b'{"sites": []}')["sites"]}
    manifests: dict[str, tuple[SiteManifest, bytes]] = {}
    for site in sorted(listed):
        raw = target.get(manifest_key(site))
        manifest = read_manifest(target, site)
        if raw is not None and manifest is not None:
            manifests[site] = (manifest, raw)
    if not manifests and previous is None:
        return  # nothing was ever published: no empty catalog either
    catalog = build_catalog(config, manifests, utc_now())
    if previous is not None and _same_catalog(previous, catalog):
        return  # a no-op run rewrites nothing
    datapackage = build_datapackage(config, [m for m, _ in manifests.values()])
    target.put(DATAPACKAGE_KEY, to_json(datapackage), JSON_TYPE)
    target.put(CATALOG_KEY, to_json(catalog), JSON_TYPE)


def _same_catalog(previous: bytes, catalog: dict) -> bool:
    try:
        old = json.loads(previous)
    except ValueError:
        return False
    return {**old, "generated_at": None} == {**catalog, "generated_at": None}
