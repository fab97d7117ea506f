"""Verification and pruning of a published tree, under the reader rule (see the README).

`verify` re-hashes the files the manifests name (a file may match its manifest entry or its
journal entry) and names unreadable, stale and unfinished documents; `prune` finds (and
deletes) the data files no manifest names.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .catalog import DamagedManifest, parse_catalog, read_published, unlisted_sites
from .journal import DamagedJournal, read_journal
from .layout import CATALOG_KEY, journal_key, manifest_key

if TYPE_CHECKING:
    from .storage import Target

__all__ = ["VerifyReport", "named_files", "prune", "verify"]


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
    damaged: set[str] = field(default_factory=set)
    """Sites whose manifest cannot be read: what their files should be is unknown."""


def _named(target: Target, report: VerifyReport | None = None) -> _Named:
    """Every data file named through the catalog, with the sizes and sha256 the reader rule
    accepts (the manifest's entry, or the journal's for a day being replaced)."""
    named = _Named()
    raw = target.get(CATALOG_KEY)
    catalog = parse_catalog(raw)
    if raw is not None and (catalog is None or not isinstance(catalog.get("sites"), list)):
        if report is not None:
            report.unreadable.append(
                f"{CATALOG_KEY} (not a valid catalog: run `ess-export run` to write it again)"
            )
        # Still check what the site manifests name, found by listing them.
        named.listed = dict.fromkeys(sorted(unlisted_sites(target, raw, catalog)))
    else:
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            named.listed = {e["site"]: e.get("sha256") for e in (catalog or {"sites": []})["sites"]}
    for site in sorted(named.listed):
        try:
            published = read_published(target, site)
        except DamagedManifest:
            named.damaged.add(site)
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
    found = _named(target, report)
    named = found.files
    present = set(target.list("data/"))
    # A damaged manifest's files are not extra: the rebuild its `unreadable` line asks for
    # decides which of them stay.
    report.extra = sorted(key for key in present - set(named) if _site_of(key) not in found.damaged)
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


def _site_of(key: str) -> str | None:
    """The site of a data key (`data/<format>/site=<site>/...`), None for any other key."""
    parts = key.split("/")
    return parts[2][len("site=") :] if len(parts) > 2 and parts[2].startswith("site=") else None


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
