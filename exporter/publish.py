"""The commit protocol: data, verify, site manifest, catalog; plus the site lock, verify, prune.

Readers follow catalog.json -> sites/<site>/manifest.json -> files. So a file is named by a
manifest only once it is in place and verified, a manifest is listed by the catalog only
once it exists, and the catalog (shared by concurrent per-site runs) is updated with a
conditional write that is retried on conflict.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import PublishError
from .journal import DamagedJournal, journal_key, read_journal
from .manifest import (
    Partition,
    Published,
    SiteManifest,
    build_catalog,
    build_datapackage,
    manifest_key,
    parse_site_manifest,
    site_manifest_json,
    to_json,
)
from .storage import Target

if TYPE_CHECKING:
    from .write import EncodedPartition

__all__ = [
    "CATALOG_KEY",
    "DamagedManifest",
    "DATAPACKAGE_KEY",
    "VerifyReport",
    "commit_catalog",
    "commit_site",
    "prune",
    "put_partition",
    "read_catalog_sites",
    "read_manifest",
    "read_published",
    "still_published",
    "verify",
]

CATALOG_KEY = "catalog.json"
DATAPACKAGE_KEY = "datapackage.json"
JSON_TYPE = "application/json"
# Documents change on every publish: caches must revalidate. A finished day rarely changes.
DOCUMENT_CACHE = "no-cache"
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


class DamagedManifest(PublishError):
    """A site manifest exists but cannot be read: only that site is affected."""


def read_published(target: Target, site: str) -> Published | None:
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


def read_manifest(target: Target, site: str) -> SiteManifest | None:
    found = read_published(target, site)
    return None if found is None else found.manifest


def still_published(target: Target, site: str, known: Published | None) -> Published | None:
    """`known` if the target still holds exactly it (one HEAD), else what it holds now.

    A year's manifest is megabytes of JSON: this spares reading and parsing it again.
    """
    info = target.head(manifest_key(site))
    if info is None:
        return None
    if known is not None and info.sha256 == known.sha256:
        return known
    return read_published(target, site)


def commit_site(target: Target, manifest: SiteManifest) -> Published:
    """Name the site's (already verified) files: the publish of this site takes effect."""
    raw = site_manifest_json(manifest)
    target.put(manifest_key(manifest.site), raw, JSON_TYPE, cache_control=DOCUMENT_CACHE)
    return Published(manifest, hashlib.sha256(raw).hexdigest())


def read_catalog_sites(raw: bytes | None) -> set[str]:
    """Site ids listed by a catalog document; a damaged one lists nothing."""
    return _listed_sites(_parsed(raw))


def _listed_sites(catalog: dict[str, Any] | None) -> set[str]:
    with contextlib.suppress(KeyError, TypeError, AttributeError):
        return {entry["site"] for entry in (catalog or {"sites": []})["sites"]}
    return set()


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
        old = _parsed(previous)
        listed = sorted(_listed_sites(old) | set(sites) | _unlisted(target, previous, old))
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


def _unlisted(target: Target, raw: bytes | None, catalog: dict[str, Any] | None) -> set[str]:
    """The sites a damaged catalog no longer lists: those with a manifest on the target."""
    if raw is None or (catalog is not None and isinstance(catalog.get("sites"), list)):
        return set()
    return {k.split("/")[1] for k in target.list("sites/") if k.endswith("/manifest.json")}


def _parsed(catalog: bytes | None) -> dict[str, Any] | None:
    """A catalog document as a dict; None when absent or damaged (it is then rewritten)."""
    with contextlib.suppress(ValueError):
        found = json.loads(catalog) if catalog is not None else None
        if isinstance(found, dict):
            return found
    return None


# -- verify and prune ------------------------------------------------------------------------


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    """Files whose bytes match neither their manifest entry nor their journal entry."""
    extra: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """Documents (catalog, manifests, journals) that cannot be parsed, with what to run."""
    stale: list[str] = field(default_factory=list)
    """Site manifests whose sha256 in catalog.json is not theirs: a publish did not finish."""
    unfinished: list[str] = field(default_factory=list)
    """Journals: a publish is under way, or was interrupted (the next run finishes it)."""

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(label, what) for each problem, in the order `ess-export verify` prints them."""
        groups = [
            ("unreadable", self.unreadable),
            ("unfinished", self.unfinished),
            ("stale", self.stale),
            ("missing", self.missing),
            ("differs", self.differ),
            ("extra", self.extra),
        ]
        return [(label, item) for label, items in groups for item in items]

    @property
    def clean(self) -> bool:
        return not self.problems


@dataclass
class _Named:
    """What the published documents name: data files (with the versions the reader rule
    accepts) and, for each site, its manifest's sha256 as the catalog lists it."""

    files: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    listed: dict[str, str | None] = field(default_factory=dict)


def _named(target: Target, report: VerifyReport | None = None) -> _Named:
    """Every data file named through the catalog, with the sizes and sha256 the reader rule
    accepts (the manifest's entry, or the journal's for a day being replaced)."""
    named = _Named()
    raw = target.get(CATALOG_KEY)
    catalog = _parsed(raw)
    if raw is not None and (catalog is None or not isinstance(catalog.get("sites"), list)):
        if report is not None:
            report.unreadable.append(
                f"{CATALOG_KEY} (not a valid catalog: run `ess-export run` to write it again)"
            )
        # Still check what the site manifests name, found by listing them.
        named.listed = dict.fromkeys(sorted(_unlisted(target, raw, catalog)))
    else:
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            named.listed = {e["site"]: e.get("sha256") for e in (catalog or {"sites": []})["sites"]}
    for site in sorted(named.listed):
        try:
            published = read_published(target, site)
        except PublishError:
            if report is not None:
                report.unreadable.append(
                    f"{manifest_key(site)} (not a valid manifest: run "
                    f"`ess-export run --site {site} --rebuild`)"
                )
            continue
        if published is None:
            continue
        if report is not None and named.listed[site] not in (None, published.sha256):
            report.stale.append(
                f"{manifest_key(site)} (catalog.json lists another version: run `ess-export run`)"
            )
        try:
            journal = read_journal(target, site)
        except DamagedJournal:
            journal = None
            if report is not None:
                report.unreadable.append(
                    f"{journal_key(site)} (not a valid journal: run `ess-export run --site {site}`)"
                )
        if journal is not None and report is not None:
            report.unfinished.append(
                f"{journal_key(site)} (a publish of site {site} is under way or was "
                f"interrupted: run `ess-export run --site {site}` once no run holds its lease)"
            )
        for name, table in published.manifest.tables.items():
            for partition in table.partitions:
                change = journal.change(name, partition.date) if journal else None
                for fmt, entry in partition.files.items():
                    versions = [(entry.bytes, entry.sha256)]
                    if change is not None and fmt in change.files:
                        versions.append((change.files[fmt].bytes, change.files[fmt].sha256))
                    named.files[entry.path] = versions
    return named


def named_files(target: Target) -> dict[str, tuple[int, str]]:
    """Every data file named by a manifest the catalog lists: key -> (bytes, sha256)."""
    return {key: versions[0] for key, versions in _named(target).files.items()}


def verify(target: Target, sample: float = 1.0) -> VerifyReport:
    """Re-hash published files against the manifests (a `sample` fraction, chosen stably),
    under the reader rule; also report unreadable, stale and unfinished documents."""
    report = VerifyReport()
    named = _named(target, report).files
    present = set(target.list("data/"))
    report.extra = sorted(present - set(named))
    for key, versions in sorted(named.items()):
        if key not in present:
            report.missing.append(key)
            continue
        # A stable sample: the same keys are checked on every run with the same fraction.
        if sample < 1.0 and int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) >= sample * 2**32:
            continue
        data = target.get(key)
        report.checked += 1
        if data is None:
            report.missing.append(key)
        elif (len(data), hashlib.sha256(data).hexdigest()) not in versions:
            report.differ.append(key)
    return report


def prune(target: Target, sites: list[str], formats: tuple[str, ...], delete: bool) -> list[str]:
    """Objects of `sites` under data/ that no manifest names; deleted only when asked.

    Call it holding the sites' locks: another site's run may have files in flight.
    """
    present = [k for s in sites for f in formats for k in target.list(f"data/{f}/site={s}/")]
    unnamed = sorted(set(present) - set(named_files(target)))
    if delete:
        for key in unnamed:
            target.delete(key)
    return unnamed
