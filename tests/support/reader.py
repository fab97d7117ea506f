"""A reader that queries a publish in a loop while runs are killed under it.

Run as ``python -m tests.support.reader URI RESULT STOP [--cache DIR] [--seconds N]``: until
the file STOP exists (or N seconds pass), each round opens `exporter.query.Dataset` afresh,
queries every published table through it, and checks every data file the manifests name
against the reader rule on its own: its sha256 is its manifest entry's, or the entry of the
same table/day/format in the site's journal `changes`. A file that fails the rule sends the
reader back to the journal and then the manifest once (the README's "re-read once"); it is
a violation only if it fails again with the same bytes. RESULT receives a JSON summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from exporter.catalog import DamagedManifest, read_manifest
from exporter.journal import Journal, peek_journal
from exporter.layout import CATALOG_KEY
from exporter.manifest import SiteManifest
from exporter.query import Dataset
from exporter.storage import Target, open_target

# A file that changed between the hash and the re-read is hashed again, this many times.
ATTEMPTS = 3
# Between rounds: leaves the runs under test some of a small machine's cores.
PAUSE = 0.05


@dataclass
class Summary:
    rounds: int = 0
    queries: int = 0
    rows: int = 0
    files: int = 0
    """Files hashed and found good under the reader rule."""
    by_journal: int = 0
    """Of those, files accepted through the journal's entry (a day being replaced)."""
    rereads: int = 0
    """Files that needed the journal and manifest read again."""
    left: int = 0
    """Files whose day left the manifest between the reads (not named any more)."""
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def accepted(
    manifest: SiteManifest | None, journal: Journal | None, table: str, date: str, fmt: str
) -> set[str] | None:
    """The sha256 values the reader rule accepts for a file; None when no manifest names it."""
    entry = (
        manifest.tables[table].partition(date) if manifest and table in manifest.tables else None
    )
    if entry is None or fmt not in entry.files:
        return None
    found = {entry.files[fmt].sha256}
    change = journal.change(table, date) if journal else None
    if change is not None and fmt in change.files:
        found.add(change.files[fmt].sha256)
    return found


def sha256(target: Target, key: str) -> str | None:
    data = target.get(key)
    return None if data is None else hashlib.sha256(data).hexdigest()


def check_site(target: Target, site: str, summary: Summary) -> None:
    manifest = read_manifest(target, site)
    journal = peek_journal(target, site)
    if manifest is None:
        return
    for table, tm in sorted(manifest.tables.items()):
        for partition in tm.partitions:
            for fmt, entry in sorted(partition.files.items()):
                check_file(
                    target,
                    site,
                    (table, partition.date, fmt),
                    entry.path,
                    summary,
                    manifest,
                    journal,
                )


def check_file(
    target: Target,
    site: str,
    day: tuple[str, str, str],
    key: str,
    summary: Summary,
    manifest: SiteManifest,
    journal: Journal | None,
) -> None:
    found = sha256(target, key)
    good = accepted(manifest, journal, *day)
    if good is not None and found in good:
        summary.files += 1
        summary.by_journal += (
            found != manifest.tables[day[0]].partition(day[1]).files[day[2]].sha256
        )
        return
    summary.rereads += 1
    for _ in range(ATTEMPTS):
        # The order a publish writes them in reverse: journal, then manifest.
        journal = peek_journal(target, site)
        manifest = read_manifest(target, site)
        good = accepted(manifest, journal, *day)
        if good is None:
            summary.left += 1
            return
        if found in good:
            summary.files += 1
            summary.by_journal += 1
            return
        again = sha256(target, key)
        if again == found:
            summary.violations.append(
                f"{key}: sha256 {found} is neither the manifest's nor the journal's "
                f"({sorted(good)}), also after re-reading them"
            )
            return
        found = again  # replaced in the meantime: judge the new bytes
    summary.violations.append(f"{key}: still changing after {ATTEMPTS} re-reads")


def one_round(uri: str, target: Target, cache: Path | None, summary: Summary) -> None:
    with Dataset.open(uri, target=target, cache_dir=cache) as dataset:
        for site, tables in dataset.tables().items():
            for table in tables:
                page = dataset.query(site, table, page_size=50)
                summary.queries += 1
                summary.rows += page.count
        for view in sorted({t for tables in dataset.tables().values() for t in tables}):
            summary.rows += dataset.sql(f"SELECT count(*) AS n FROM {view}").column(0)[0].as_py()
            summary.queries += 1
    for site in sorted(dataset.tables()):
        check_site(target, site, summary)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("result", type=Path)
    parser.add_argument("stop", type=Path)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    target = open_target(args.uri)
    summary = Summary()
    deadline = time.monotonic() + args.seconds
    while not args.stop.exists() and time.monotonic() < deadline:
        if target.get(CATALOG_KEY) is None:
            time.sleep(0.05)
            continue
        try:
            one_round(args.uri, target, args.cache, summary)
        except DamagedManifest as exc:
            summary.errors.append(f"damaged manifest: {exc}")
        except Exception as exc:  # every failure a reader could meet is reported
            summary.errors.append(f"{type(exc).__name__}: {exc}")
        summary.rounds += 1
        time.sleep(PAUSE)
    args.result.write_text(json.dumps(asdict(summary), indent=1))


if __name__ == "__main__":
    main()
