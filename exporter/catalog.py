"""The one reader of what is published: catalog.json and the site manifests, on any target.

Readers (query, site, verify) and writers (publish) read through here, so that a damaged
document means the same thing everywhere: a damaged site manifest affects only its site
(`DamagedManifest`), a damaged catalog is rewritten by the next run, and its sites are
then found by listing the manifests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

from .errors import PublishError
from .layout import CATALOG_KEY, NAME_PATTERN, is_name, manifest_key
from .manifest import Published, SiteManifest, parse_site_manifest

if TYPE_CHECKING:
    from .storage import Reader

__all__ = [
    "DamagedManifest",
    "catalog_sites",
    "listed_sites",
    "parse_catalog",
    "read_catalog",
    "read_catalog_sites",
    "read_manifest",
    "read_published",
    "still_published",
    "unlisted_sites",
]


class DamagedManifest(PublishError):
    """A site manifest exists but cannot be read: only that site is affected."""


def read_published(target: Reader, site: str) -> Published | None:
    """The published manifest of a site, or None before its first publish."""
    key = manifest_key(site)
    raw = target.get(key)
    if raw is None:
        return None
    try:
        manifest = parse_site_manifest(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedManifest(
            f"{target.url(key)} is not a valid manifest ({exc}); rebuild site {site} from "
            f"its source with `ess-export run --site {site} --rebuild`"
        ) from None
    return Published(manifest, hashlib.sha256(raw).hexdigest())


def read_manifest(target: Reader, site: str) -> SiteManifest | None:
    found = read_published(target, site)
    return None if found is None else found.manifest


def still_published(target: Reader, site: str, known: Published | None) -> Published | None:
    """`known` if the target still holds exactly it (one HEAD), else what it holds now.

    A year's manifest is megabytes of JSON: this spares reading and parsing it again.
    """
    info = target.head(manifest_key(site))
    if info is None:
        return None
    if known is not None and info.sha256 == known.sha256:
        return known
    return read_published(target, site)


def read_catalog_sites(raw: bytes | None) -> set[str]:
    """Site ids listed by a catalog document; a damaged one lists nothing."""
    return listed_sites(parse_catalog(raw))


def listed_sites(catalog: dict[str, Any] | None) -> set[str]:
    """Site ids listed by a parsed catalog; none when it is damaged."""
    with contextlib.suppress(KeyError, TypeError, AttributeError):
        return {entry["site"] for entry in (catalog or {"sites": []})["sites"]}
    return set()


def unlisted_sites(target: Reader, raw: bytes | None, catalog: dict[str, Any] | None) -> set[str]:
    """The sites a damaged catalog no longer lists: those with a manifest on the target."""
    if raw is None or (catalog is not None and isinstance(catalog.get("sites"), list)):
        return set()
    return {k.split("/")[1] for k in target.list("sites/") if k.endswith("/manifest.json")}


def parse_catalog(catalog: bytes | None) -> dict[str, Any] | None:
    """A catalog document as a dict; None when absent or damaged (it is then rewritten)."""
    with contextlib.suppress(ValueError):
        found = json.loads(catalog) if catalog is not None else None
        if isinstance(found, dict):
            return found
    return None


def read_catalog(target: Reader) -> tuple[dict[str, Any], list[str]] | None:
    """catalog.json and the sites it lists, for a reader: None when there is no catalog; a
    PublishError naming the fix when it is damaged or lists an unsafe site name."""
    raw = target.get(CATALOG_KEY)
    if raw is None:
        return None
    catalog = parse_catalog(raw)
    try:
        sites = [entry["site"] for entry in catalog["sites"]]  # type: ignore[index]
    except (KeyError, TypeError):
        raise PublishError(
            f"{target.url(CATALOG_KEY)} is not a valid catalog; publish again with `ess-export run`"
        ) from None
    bad = [s for s in sites if not is_name(s)]
    if bad:  # never a path segment: a catalog is read before anything it names
        raise PublishError(
            f"{target.url(CATALOG_KEY)}: invalid site name {bad[0]!r} (must match "
            f"{NAME_PATTERN.pattern}); publish again with `ess-export run`"
        )
    return catalog, sites  # type: ignore[return-value]


def catalog_sites(target: Reader) -> list[str] | None:
    """The sites catalog.json lists (see `read_catalog`); None when there is no catalog."""
    found = read_catalog(target)
    return None if found is None else found[1]
