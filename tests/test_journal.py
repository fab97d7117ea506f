"""The publish journal: intent before overwrite, small commits, roll forward or back."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import exporter.commit
from exporter.catalog import read_manifest
from exporter.config import load
from exporter.demo import write_sqlite
from exporter.errors import PublishError
from exporter.journal import Journal, parse_journal, recover
from exporter.layout import journal_key
from exporter.manifest import FileEntry, Partition, SiteManifest, TableManifest, encode_stats
from exporter.pipeline import run
from exporter.site import build_site
from exporter.storage import LocalTarget
from exporter.verification import verify
from tests.conftest import DEMO_LATER

START = dt.date(2022, 8, 30)


def demo(tmp_path: Path, seed: int) -> Any:
    write_sqlite(tmp_path / "src", start=START, days=3, interval_s=3600, seed=seed)
    return load(Path("config/demo.toml"), env={"ESS_DEMO_DIR": str(tmp_path / "src")})


def data_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "data").rglob("*.*")}


def manifests(root: Path) -> dict[str, Any]:
    found = {}
    for site in ("1", "2"):
        document = json.loads((root / f"sites/{site}/manifest.json").read_bytes())
        document.pop("generated_at")
        found[site] = document
    return found


class Recording(LocalTarget):
    """A local target that logs each put (key, and the journal document when it is one),
    and fails from the `fail_at`-th data-file put on."""

    def __init__(self, root: Path, fail_at: int | None = None) -> None:
        super().__init__(root)
        self.log: list[tuple[str, Any]] = []
        self.fail_at = fail_at
        self.data_puts = 0

    def put(self, key: str, data: bytes, content_type: str, **kw: Any) -> None:
        journal = parse_journal(data) if key.endswith("journal.json") else None
        self.log.append((key, journal))
        super().put(key, data, content_type, **kw)

    def put_file(self, key: str, path: Path, content_type: str, **kw: Any) -> None:
        self.data_puts += 1
        if self.fail_at is not None and self.data_puts >= self.fail_at:
            raise PublishError(f"cannot write {key}: No space left on device")
        self.log.append((key, hashlib.sha256(path.read_bytes()).hexdigest()))
        super().put_file(key, path, content_type, **kw)


def test_every_overwrite_is_journaled_first_and_commits_come_in_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "public"
    run(demo(tmp_path, seed=0), target=str(out), now=DEMO_LATER)
    published = {s: read_manifest(LocalTarget(out), s) for s in ("1", "2")}
    named = {  # key -> sha256 the live manifest gives
        f.path: f.sha256
        for m in published.values()
        for t in m.tables.values()  # type: ignore[union-attr]
        for p in t.partitions
        for f in p.files.values()
    }
    monkeypatch.setattr(exporter.commit, "COMMIT_SECONDS", 0.0)  # commit after every day
    recording = Recording(out)
    report = run(demo(tmp_path, seed=1), target=recording, now=DEMO_LATER, rebuild=True)
    assert report.partitions == 24 and report.unchanged == 0

    journaled: dict[str, str] = {}  # key -> sha256 of the new entry, as journaled so far
    overwrites = 0
    for key, what in recording.log:
        if key.endswith("journal.json"):
            for days in what.changes.values():
                journaled.update({f.path: f.sha256 for p in days for f in p.files.values()})
        elif key.startswith("data/") and named.get(key) not in (None, what):
            overwrites += 1
            assert journaled.get(key) == what, f"{key} overwritten before it was journaled"
    assert overwrites == 48  # every file of every day: the seed changed every value
    commits = [k for k, _ in recording.log if k.endswith("manifest.json")]
    assert len(commits) == 24  # one per day, with COMMIT_SECONDS = 0
    assert not (out / journal_key("1")).exists() and not (out / journal_key("2")).exists()
    assert verify(LocalTarget(out)).clean


def test_a_failed_rebuild_is_finished_by_the_next_plain_run(tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "public"
    run(demo(tmp_path, seed=0), target=str(out), now=DEMO_LATER)
    changed = demo(tmp_path, seed=1)
    run(changed, target=str(reference), now=DEMO_LATER)  # a clean publish of the new source
    full = Recording(out, fail_at=9)  # the disk fills up at the 9th file
    with pytest.raises(PublishError, match="No space left on device"):
        run(changed, target=full, now=DEMO_LATER, rebuild=True)
    journal = parse_journal((out / journal_key("1")).read_bytes())
    assert len(journal.pending) == 8  # 4 tables x 3 days, of which 4 were committed
    assert {p.reason for p in journal.pending} == {"rebuild"}
    assert len(parse_journal((out / journal_key("2")).read_bytes()).pending) == 12
    assert not verify(LocalTarget(out)).clean  # unfinished: the journal is still there

    report = run(changed, target=str(out), now=DEMO_LATER)  # plain: no --rebuild
    # Site 1's 8 unfinished days and the whole of site 2, which the failure stopped before:
    # its journal recorded the rebuild before site 1 began.
    assert report.partitions == 8 + 12 and report.recovered == []
    assert not (out / journal_key("1")).exists() and not (out / journal_key("2")).exists()
    assert data_files(out) == data_files(reference)
    assert manifests(out) == manifests(reference)
    assert verify(LocalTarget(out)).clean


def entry(day: str, csv: str, parquet: str, rows: int = 1) -> Partition:
    files = {
        "csv": FileEntry(f"data/csv/{day}.csv", 1, csv),
        "parquet": FileEntry(f"data/parquet/{day}.parquet", 1, parquet),
    }
    bounds = f"{day}T00:00:00+09:00"
    stats = encode_stats({})
    return Partition(day, rows, True, bounds, bounds, 0, {}, stats, files)


class Stored(LocalTarget):
    """Answers `head` with the sha256 each key is said to hold."""

    def __init__(self, root: Path, holds: dict[str, str]) -> None:
        super().__init__(root)
        self.holds = holds

    def head(self, key: str) -> Any:
        from exporter.storage import ObjectInfo

        sha = self.holds.get(key)
        return None if sha is None else ObjectInfo(1, sha, sha)


@pytest.mark.parametrize(
    ("holds", "kept", "forward", "dropped"),
    [
        pytest.param({"csv": "new-c", "parquet": "new-p"}, "new", ["rack/d1"], [], id="all-new"),
        pytest.param({"csv": "old-c", "parquet": "old-p"}, "old", [], [], id="all-old"),
        pytest.param({"csv": "new-c", "parquet": "old-p"}, None, [], ["rack/d1"], id="mixed"),
        pytest.param({"csv": "new-c"}, None, [], ["rack/d1"], id="one-missing"),
    ],
)
def test_recover_rolls_each_day_to_the_entry_its_files_match(
    tmp_path: Path, holds: dict[str, str], kept: str | None, forward: list, dropped: list
) -> None:
    old, new = entry("d1", "old-c", "old-p"), entry("d1", "new-c", "new-p", rows=2)
    other = entry("d0", "x", "y")
    table = TableManifest((), (), (other, old))
    manifest = SiteManifest("1", "Site 1", "Asia/Seoul", "t", {"rack": table})
    journal = Journal(
        site="1",
        owner="o",
        written_at="t",
        changes={"rack": [new]},
        schemas={"rack": table.schema_hash},
    )
    keys = {"csv": "data/csv/d1.csv", "parquet": "data/parquet/d1.parquet"}
    target = Stored(tmp_path, {keys[fmt]: sha for fmt, sha in holds.items()})
    found = recover(target, manifest, journal)
    assert list(found.rolled_forward) == forward and list(found.dropped) == dropped
    days = found.manifest.tables["rack"].partitions  # type: ignore[union-attr]
    assert days[0] == other  # a day the journal does not name is not looked at
    want = {"new": new, "old": old, None: None}[kept]
    assert (days[1] if len(days) > 1 else None) == want
    assert list(found.obsolete) == (sorted(keys.values()) if dropped else [])


def test_a_journal_of_a_table_whose_schema_changed_is_not_rolled_into_the_old_table(
    tmp_path: Path,
) -> None:
    old, new = entry("d1", "old-c", "old-p"), entry("d1", "new-c", "new-p")
    table = TableManifest((), (), (old,))
    manifest = SiteManifest("1", "Site 1", "Asia/Seoul", "t", {"rack": table})
    journal = Journal(
        site="1", owner="o", written_at="t", changes={"rack": [new]}, schemas={"rack": "sha256:x"}
    )
    holds = {"data/csv/d1.csv": "new-c", "data/parquet/d1.parquet": "new-p"}
    found = recover(Stored(tmp_path, holds), manifest, journal)
    assert found.dropped == ("rack/d1",)
    assert found.manifest.tables["rack"].partitions == ()  # type: ignore[union-attr]


def test_a_damaged_journal_makes_the_next_run_check_every_file(tmp_path: Path) -> None:
    out = tmp_path / "public"
    config = demo(tmp_path, seed=0)
    run(config, target=str(out), now=DEMO_LATER)
    (out / journal_key("1")).write_text('{"site": "1", "chan')  # torn
    damaged = next((out / "data/csv/site=1/table=rack").rglob("*.csv"))
    damaged.write_text("timestamp\n")
    report = run(config, target=str(out), now=DEMO_LATER)
    day = damaged.parent.name.removeprefix("date=")
    assert report.recovered == [f"1/rack/{day}"] and report.partitions == 1
    assert not (out / journal_key("1")).exists()
    assert verify(LocalTarget(out)).clean


def test_pages_wait_for_a_site_whose_publish_is_in_flux(tmp_path: Path) -> None:
    out = tmp_path / "public"
    run(demo(tmp_path, seed=0), target=str(out), now=DEMO_LATER)
    manifest = read_manifest(LocalTarget(out), "1")
    day = manifest.tables["rack"].partitions[0]  # type: ignore[union-attr]
    journal = Journal(site="1", owner="o", written_at="t", changes={"rack": [day]})
    (out / journal_key("1")).write_bytes(journal.to_json())
    for page in out.glob("sites/*/index.html"):
        page.unlink()
    with pytest.raises(PublishError, match=r"site 1 has a publish in flux .*--site 1"):
        build_site(LocalTarget(out))
    assert (out / "sites/2/index.html").exists() and not (out / "sites/1/index.html").exists()


def test_a_damaged_catalog_is_rewritten_with_every_site_even_by_a_run_for_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "public"
    config = demo(tmp_path, seed=0)
    run(config, target=str(out), now=DEMO_LATER)
    whole = json.loads((out / "catalog.json").read_bytes())
    (out / "catalog.json").write_text('{"sites": [{"site": "1", "pa')  # truncated
    found = verify(LocalTarget(out))
    assert [label for label, _ in found.problems] == ["unreadable"]
    assert found.unreadable[0].startswith("catalog.json (not a valid catalog")
    run(config, target=str(out), now=DEMO_LATER, sites=["1"])
    again = json.loads((out / "catalog.json").read_bytes())
    assert [e["site"] for e in again["sites"]] == ["1", "2"]
    assert again["sites"] == whole["sites"]
    assert verify(LocalTarget(out)).clean
