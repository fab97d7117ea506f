"""The run as a whole: demo, documents, planning, interruption, progress output."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from frictionless import Package, validate

from exporter import memory
from exporter.errors import PublishError, SourceError
from exporter.layout import file_key
from exporter.manifest import (
    encode_stats,
    parse_site_manifest,
    site_manifest_json,
    to_json,
)
from exporter.pipeline import make_plan, run
from exporter.storage import LocalTarget
from exporter.verification import verify
from tests.conftest import DEMO_LATER, SeedSites, demo_config, published_manifest
from tests.support.pages import stale_pages
from tests.support.targets import WRITES, FailingTarget

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_demo_then_run_publishes_both_sites(tmp_path: Path) -> None:
    env = {"ESS_DEMO_DIR": str(tmp_path / "src"), "ESS_EXPORT_TARGET": str(tmp_path / "pub")}
    made = cli("demo", "--days", "2", "--interval", "120", "--out", str(tmp_path / "src"), env=env)
    assert made.returncode == 0, made.stderr
    result = cli("run", "--config", "config/demo.toml", env=env)
    assert result.returncode == 0, result.stderr
    assert "exported 16 partition(s)" in result.stdout
    # Not a terminal: one plain log line per partition, no progress bar.
    assert "site 2 table pcs 2022-09-02:" in result.stderr
    pub = tmp_path / "pub"
    catalog = json.loads((pub / "catalog.json").read_text())
    assert [s["site"] for s in catalog["sites"]] == ["1", "2"]
    for entry in catalog["sites"]:
        raw = (pub / entry["path"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
        assert entry["tables"] == ["bank", "etc", "pcs", "rack"]
    for site in ("1", "2"):
        with sqlite3.connect(tmp_path / "src" / f"ess{site}.sqlite") as db:
            for name, table in published_manifest(pub, site).tables.items():
                (count,) = db.execute(f'SELECT count(*) FROM "{name}"').fetchone()
                assert sum(p.rows for p in table.partitions) == count
    rack2 = published_manifest(pub, "2").tables["rack"]
    by_name = {c.name: c.source for c in rack2.columns}
    assert by_name["rack_status_for_online"] == "RACK_STATUS_FOR_Online"
    assert by_name["rack_tray_volatge_imbalance_warning"] == "RACK_TRAY_VOLATGE_IMBALANCE_WARNING"
    assert "bank_id" not in {c.name for c in published_manifest(pub, "2").tables["pcs"].columns}
    # A second run has nothing new: every day is complete and older than the lookback.
    again = cli("run", "--config", "config/demo.toml", env=env)
    assert "exported 0 partition(s)" in again.stdout, again.stdout


def test_run_report_and_exit_nothing_for_cron(tmp_path: Path) -> None:
    src, pub = tmp_path / "src", tmp_path / "pub"
    env = {"ESS_DEMO_DIR": str(src), "ESS_EXPORT_TARGET": str(pub)}
    made = cli("demo", "--days", "2", "--interval", "600", "--out", str(src), env=env)
    assert made.returncode == 0, made.stderr

    def run_cli(name: str) -> tuple[int, dict[str, Any]]:
        report = tmp_path / name
        args = ("run", "--config", "config/demo.toml", "--report", str(report), "--exit-nothing")
        result = cli(*args, env=env)
        assert "Traceback" not in result.stderr
        return result.returncode, json.loads(report.read_text())

    code, first = run_cli("first.json")
    assert code == 0
    data = [p for p in (pub / "data").rglob("*") if p.is_file()]
    tables = [t for s in ("1", "2") for t in published_manifest(pub, s).tables.values()]
    assert first == {
        "partitions_planned": 16,
        "partitions_exported": 16,
        "partitions_unchanged": 0,
        "partitions_failed": [],
        "rows": sum(p.rows for t in tables for p in t.partitions),
        "bytes_sent": sum(p.stat().st_size for p in data),
        "requests": first["requests"],
        "seconds": first["seconds"],
        "sites": ["1", "2"],
        "unnamed_objects": [],
        "emptied_files": [],
        "leftover_files": [],
        "recovered": [],
        "pruned": False,
        "dry_run": False,
    }
    assert first["requests"] > len(data) and first["seconds"] > 0
    code, again = run_cli("again.json")  # every day complete and published: nothing to do
    assert code == 4
    assert again["partitions_planned"] == again["rows"] == again["bytes_sent"] == 0
    (src / "ess2.sqlite").unlink()  # a failed run still leaves a report, saying what failed
    code, failed = run_cli("failed.json")
    assert code == 1
    assert failed == {
        "failed": True,
        "error": f"site 2: SQLite file {src / 'ess2.sqlite'} not found; run 'ess-export demo' "
        "to create the demo databases, or fix the DSN",
        "stage": "plan",
        **{key: again[key] for key in again if key not in ("requests", "seconds")},
        "requests": failed["requests"],
        "seconds": failed["seconds"],
        "sites": [],
    }


def test_a_day_with_no_rows_any_more_loses_its_entry_then_its_files_and_month_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = demo_config(tmp_path, days=3), tmp_path / "public"  # Aug 30 - Sep 1
    run(config, target=str(out), now=DEMO_LATER)
    gone = [out / file_key(f, "1", "rack", "2022-09-01") for f in ("csv", "parquet")]
    september = out / "sites/1/rack/2022-09/index.html"
    assert all(p.exists() for p in [*gone, september])
    with sqlite3.connect(tmp_path / "src/ess1.sqlite") as db:  # Sep 1 in Seoul, in UTC
        db.execute("""DELETE FROM rack WHERE "TIMESTAMP" >= '2022-08-31 15:00:00'""")
    steps: list[str] = []  # keys put, and "-key" deleted, in order
    put, delete = LocalTarget.put, LocalTarget.delete

    def putting(target: LocalTarget, key: str, *args: Any, **kw: Any) -> None:
        steps.append(key)
        put(target, key, *args, **kw)

    def deleting(target: LocalTarget, key: str) -> None:
        steps.append(f"-{key}")
        delete(target, key)

    monkeypatch.setattr(LocalTarget, "put", putting)
    monkeypatch.setattr(LocalTarget, "delete", deleting)

    report = run(config, target=str(out), now=DEMO_LATER, full_check=True)
    assert [(j.table, j.day, j.reason) for j in report.jobs] == [
        ("rack", "2022-09-01", "no rows any more")
    ]
    assert report.failed == []
    days = [p.date for p in published_manifest(out, "1").tables["rack"].partitions]
    assert days == ["2022-08-30", "2022-08-31"]
    assert not any(p.exists() for p in gone)
    assert sorted(report.emptied) == sorted(p.relative_to(out).as_posix() for p in gone)
    assert report.to_dict()["emptied_files"] == report.emptied
    assert (out / file_key("csv", "1", "bank", "2022-09-01")).exists()  # other tables keep it
    # Deleted last: after the manifest and the catalog that stop naming them.
    deletes = [i for i, step in enumerate(steps) if step.startswith("-data/")]
    assert len(deletes) == 2 and min(deletes) > steps.index("catalog.json")
    assert steps.index("sites/1/manifest.json") < steps.index("catalog.json")
    assert verify(LocalTarget(out)).clean  # nothing missing, nothing extra
    resources = json.loads((out / "datapackage.json").read_text())["resources"]
    (rack,) = [r for r in resources if r["name"] == "1-rack-parquet"]
    assert len(rack["path"]) == 2 and not any("2022-09-01" in path for path in rack["path"])
    glob = f"{out}/data/parquet/site=1/table=rack/*/*.parquet"  # what a reader of the tree sees
    found = duckdb.sql(
        f"SELECT DISTINCT date FROM read_parquet('{glob}', hive_partitioning=true) ORDER BY 1"
    ).fetchall()
    assert [str(d) for (d,) in found] == ["2022-08-30", "2022-08-31"]
    # The month's page goes too, once the table's page no longer links to it.
    page_deletes = [step for step in steps if step.startswith("-") and step.endswith(".html")]
    assert page_deletes == ["-sites/1/rack/2022-09/index.html"]
    assert steps.index("sites/1/rack/index.html") < steps.index(page_deletes[0])
    assert not september.exists()
    assert "2022-09" not in (out / "sites/1/rack/index.html").read_text()
    assert (out / "sites/1/bank/2022-09/index.html").exists()  # other tables keep September
    assert stale_pages(LocalTarget(out)) == []


def test_datapackage_is_a_valid_frictionless_package(published: Path) -> None:
    package = Package(published / "datapackage.json")  # raises on an invalid descriptor
    report = validate(published / "datapackage.json")
    assert len(report.tasks) == 16
    for task in report.tasks:  # the Parquet files as files (tests/test_datapackage.py)
        assert task.valid, (task.name, [e.message for e in task.errors[:3]])
    assert package.get_resource("1-rack-parquet").schema.get_field("rack_soc").type == "number"
    package = json.loads((published / "datapackage.json").read_text())
    assert {r["name"] for r in package["resources"]} >= {"1-rack-csv", "2-pcs-parquet"}
    text = json.dumps(package) + (published / "catalog.json").read_text()
    assert "pgcluster-pw" not in text and "127.0.0.1" not in text


def test_no_secret_in_any_published_file(seed_sites: SeedSites, published: Path) -> None:
    for path in published.rglob("*.json"):
        text = path.read_text()
        for dsn in seed_sites.dsns.values():
            assert "pgcluster-pw" not in text and dsn not in text, path


def test_plan_is_pure_and_follows_the_manifest(seed_sites: SeedSites, published: Path) -> None:
    config = seed_sites.config()
    target = LocalTarget(published)
    later = datetime(2022, 9, 30, tzinfo=UTC)
    assert make_plan(config, target, now=later).jobs == []
    # Published while 2022-09-02 was still going on: that day is re-planned, incomplete.
    during = datetime(2022, 9, 2, 3, 0, tzinfo=UTC)
    jobs = make_plan(config, target, sites=["1"], tables=["rack"], rebuild=True, now=during).jobs
    assert [(j.day, j.complete) for j in jobs] == [("2022-09-01", True), ("2022-09-02", False)]
    ranged = make_plan(config, target, since=datetime(2022, 9, 2).date(), now=later).jobs
    assert {j.day for j in ranged} == {"2022-09-02"} and len(ranged) == 8


def test_plan_command_prints_without_writing(seed_sites: SeedSites, tmp_path: Path) -> None:
    result = cli(
        "plan",
        "--config",
        str(seed_sites.config_path),
        "--target",
        str(tmp_path / "p"),
        "--site",
        "2",
        "--table",
        "etc",
        env=seed_sites.env,
    )
    assert result.returncode == 0, result.stderr
    assert "site 2 table etc: 2 day(s)" in result.stdout
    assert "2022-09-01  complete    new day" in result.stdout
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("fail_at", [1, 2, 5, 16])
def test_an_interrupted_run_leaves_valid_manifests(
    seed_sites: SeedSites, tmp_path: Path, fail_at: int
) -> None:
    config = seed_sites.config()
    run(config, target=str(tmp_path), sites=["1"])
    before = (tmp_path / "sites/1/manifest.json").read_bytes()
    # The n-th write fails, like a disk that fills up mid-run.
    failing = FailingTarget(tmp_path, fail_at, counted=WRITES, once=True)
    with pytest.raises(PublishError, match="No space left"):
        run(config, target=failing, sites=["1"], rebuild=True)
    after = published_manifest(tmp_path, "1")
    assert after.tables.keys() == json.loads(before)["tables"].keys()
    for table in after.tables.values():
        for partition in table.partitions:
            for entry in partition.files.values():
                data = (tmp_path / entry.path).read_bytes()
                assert hashlib.sha256(data).hexdigest() == entry.sha256


@pytest.mark.parametrize(
    ("odd", "day"),
    [
        pytest.param("2022-09-01 01:00:01+09:00", ", day 2022-09-01", id="while-reading"),
        pytest.param("2022-09-01T01:00:01+09:00", "", id="while-planning"),
    ],
)
def test_mixed_sqlite_timestamps_name_site_table_column_day_value(
    tmp_path: Path, odd: str, day: str
) -> None:
    db = tmp_path / "ess1.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE "etc" ("TIMESTAMP" TIMESTAMP, "SENSOR1_TEMPERATURE" REAL)')
        conn.executemany(
            'INSERT INTO "etc" VALUES (?, ?)',
            [("2022-08-31 23:00:00", 20.5), (odd, 20.6), ("2022-09-01 02:00:00", 20.7)],
        )
    config = tmp_path / "c.toml"
    config.write_text(f'[sites.1]\ndsn = "sqlite:{db}"\n[sites.1.tables.etc]\n')
    result = cli("run", "--config", str(config), "--target", str(tmp_path / "p"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: site 1, table etc, column TIMESTAMP{day}: cannot convert "
        f"'{odd}' to a timestamp; store one format, UTC 'YYYY-MM-DD HH:MM:SS[.ffffff]'"
    )
    assert not (tmp_path / "p" / "sites").exists()


def test_missing_source_column_is_named(seed_sites: SeedSites, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        seed_sites.config_path.read_text().replace(
            'keys = ["BANK_ID", "RACK_ID"]', 'keys = ["BANK_ID", "RACK_NO"]', 1
        )
    )
    with pytest.raises(SourceError, match="column 'RACK_NO' named in sites.1.tables.rack.keys"):
        from exporter.config import load

        run(load(config, env=seed_sites.env), target=str(tmp_path / "p"))


def test_manifest_json_reads_back_exactly(published: Path) -> None:
    raw = (published / "sites/1/manifest.json").read_bytes()
    parsed = parse_site_manifest(raw)
    assert site_manifest_json(parsed) == raw  # written back to the same bytes
    # Every value reads as the standard library reads it, the statistics (kept as JSON
    # text until asked for) included.
    document = json.loads(raw)
    assert parsed.site == document["site"] and parsed.generated_at == document["generated_at"]
    for name, table in parsed.tables.items():
        expected = document["tables"][name]
        assert [vars(c) for c in table.columns] == expected["columns"]
        assert list(table.keys) == expected["keys"]
        assert len(table.partitions) == len(expected["partitions"]) > 0
        for partition, want in zip(table.partitions, expected["partitions"], strict=True):
            assert partition.stats == want["stats"]
            assert (partition.date, partition.rows, partition.complete) == (
                want["date"],
                want["rows"],
                want["complete"],
            )
            assert partition.fingerprint == want["fingerprint"]
            files = {fmt: msgspec.structs.asdict(f) for fmt, f in partition.files.items()}
            assert files == want["files"]
    # Statistics the writer computed round-trip too, integers beyond 64 bits and odd text.
    odd_stats = {'Δ,"\n': {"max": 2**70, "mean": 1e-7, "min": -0.0, "nulls": 3}}
    table = next(iter(parsed.tables))
    day = parsed.tables[table].partitions[0]
    first = msgspec.structs.replace(day, stats_json=encode_stats(odd_stats))
    odd = dataclasses.replace(parsed, tables={table: parsed.tables[table].with_partitions([first])})
    again = parse_site_manifest(site_manifest_json(odd))
    assert again == odd and again.tables[table].partitions[0].stats == odd_stats
    assert json.loads(to_json({"stats": odd_stats}, compact=True)) == {"stats": odd_stats}


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b'{"site": "1", "tables": ', id="truncated"),
        pytest.param(b'{"site": "1"}', id="missing-keys"),
        pytest.param(b'{"format_version": 1, "rows": NaN}', id="nan-literal"),
    ],
)
def test_a_damaged_published_manifest_is_named_with_the_fix(
    seed_sites: SeedSites, published: Path, tmp_path: Path, damage: bytes
) -> None:
    target = tmp_path / "public"
    shutil.copytree(published, target)
    (target / "sites/1/manifest.json").write_bytes(damage)
    damaged = r"sites/1/manifest\.json is not a valid manifest.*--rebuild"
    with pytest.raises(PublishError, match=damaged):
        run(seed_sites.config(), target=str(target), sites=["1"])
    assert (target / "sites/1/manifest.json").read_bytes() == damage  # nothing half-published


def test_freed_native_memory_can_be_returned() -> None:
    # glibc (this image, CI): connectorx's freed slices are trimmed after each partition.
    assert platform.libc_ver()[0] != "glibc" or memory._malloc_trim() is not None
    memory.release_freed_memory()
