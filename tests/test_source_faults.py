"""Database faults at every stage of a real `ess-export run`: one line, exit 1, nothing published.

PostgreSQL is really stopped (`pg_ctl stop -m immediate`) by tests/support/faults.py inside
the run's own process: after planning's schema discovery, during the fingerprint query and
in the middle of a day's read. This module has its own cluster, so stopping it leaves the
session's shared one alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest

from exporter.config import load
from exporter.pipeline import run
from exporter.storage import LocalTarget
from exporter.verification import verify
from tests.support.pgcluster import PgCluster
from tests.support.seed import load_demo

CANARY = "Canary-pw-5d21e"
DAYS = ("2022-09-01", "2022-09-02", "2022-09-03")
TOML = """
[dataset]
title = "Source faults"
[sites.1]
timezone = "Asia/Seoul"
dsn = "${ESS1_DSN}"
[sites.1.tables.rack]
keys = ["BANK_ID", "RACK_ID"]
"""
# What a run prints on stderr besides its error, when stderr is not a terminal.
PROGRESS = re.compile(r"^(planned \d+ partition\(s\)|site 1 table rack \d{4}-\d\d-\d\d: .*)$")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster.start(password=CANARY) as pg:
        dsn = pg.create_database("faults")
        with psycopg.connect(dsn, autocommit=True) as conn:
            load_demo(
                conn, "1", start=dt.date(2022, 9, 1), days=len(DAYS), interval_s=60, tables=["rack"]
            )
        yield pg


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(TOML)
    return path


@pytest.fixture
def public(cluster: PgCluster, config_path: Path, tmp_path: Path) -> Path:
    """A clean publish of the site, before the faulty run."""
    out = tmp_path / "public"
    run(load(config_path, env={"ESS1_DSN": cluster.dsn("faults")}), target=str(out))
    return out


def documents(root: Path) -> dict[str, bytes]:
    return {key: (root / key).read_bytes() for key in ("catalog.json", "sites/1/manifest.json")}


class Fault(NamedTuple):
    stage: str
    args: tuple[str, ...]
    expected: str
    """The error line, from after "Error: " up to the driver's own words."""


FAULTS = [
    pytest.param(
        Fault("before-schema", (), "Error: site 1, table rack: reading its columns failed: "),
        id="stopped-before-schema-discovery",
    ),
    pytest.param(
        Fault(
            "before-extent",
            (),
            "Error: site 1, table rack: finding its first and last day failed: ",
        ),
        id="stopped-before-extent",
    ),
    pytest.param(
        Fault(
            "before-fingerprints",
            ("--full-check",),
            "Error: site 1, table rack: fingerprinting its days failed: ",
        ),
        id="stopped-after-schema-discovery",
    ),
    pytest.param(
        Fault(
            "during-fingerprints",
            ("--full-check",),
            "Error: site 1, table rack: fingerprinting its days failed: ",
        ),
        id="stopped-during-fingerprints",
    ),
    pytest.param(
        Fault("read", ("--rebuild",), "Error: site 1, table rack, day 2022-09-01: read failed: "),
        id="stopped-mid-read",
    ),
    pytest.param(
        Fault(
            "read-halt", ("--rebuild",), "Error: site 1, table rack, day 2022-09-01: read failed: "
        ),
        id="stopped-between-slices",
    ),
]


def faulty_run(
    stage: str,
    cluster: PgCluster,
    dsn: str,
    config_path: Path,
    public: Path,
    *args: str,
    day: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ESS1_DSN": dsn,
        "FAULT_HALT": json.dumps(cluster.halt_argv()),
        "FAULT_DSN": cluster.dsn("faults"),
        "FAULT_TABLE": "rack",
        **({"FAULT_DAY": day} if day else {}),
    }
    command = [sys.executable, "-m", "tests.support.faults", stage, "run"]
    command += ["--config", str(config_path), "--target", str(public), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if not PROGRESS.match(line)]
    assert len(errors) == 1, result.stderr  # no traceback, no r2d2 pool log
    assert errors[0].startswith(expected), errors[0]
    assert CANARY not in result.stderr + result.stdout
    return errors[0]


def assert_a_plain_run_finishes_the_rebuild(
    cluster: PgCluster, config_path: Path, public: Path
) -> None:
    """A failed --rebuild leaves its intent in the journal (nothing in flux): `verify`
    says so, and a plain run, the database back, finishes it."""
    found = verify(LocalTarget(public))
    assert [label for label, _ in found.problems] == ["unfinished"], found.problems
    assert found.unfinished[0].startswith("sites/1/journal.json")
    again = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--config", str(config_path)]
        + ["--target", str(public)],
        capture_output=True,
        text=True,
        env={**os.environ, "ESS1_DSN": cluster.dsn("faults")},
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert verify(LocalTarget(public)).clean


@pytest.mark.parametrize("fault", FAULTS)
def test_a_stopped_server_fails_the_run_in_one_line(
    fault: Fault, cluster: PgCluster, config_path: Path, public: Path
) -> None:
    before = documents(public)
    try:
        result = faulty_run(
            fault.stage, cluster, cluster.dsn("faults"), config_path, public, *fault.args
        )
    finally:
        cluster.resume()
    line = assert_one_error_line(result, fault.expected)
    assert line.endswith("; check that the database is up, then run again"), line
    assert documents(public) == before
    if "--rebuild" in fault.args:
        assert_a_plain_run_finishes_the_rebuild(cluster, config_path, public)
    assert verify(LocalTarget(public)).clean


def timeout_dsn(cluster: PgCluster, ms: int) -> str:
    return cluster.dsn("faults") + f"?options=-c%20statement_timeout%3D{ms}"


def test_a_statement_timeout_while_planning_is_named(
    cluster: PgCluster, config_path: Path, public: Path
) -> None:
    before = documents(public)
    with psycopg.connect(cluster.dsn("faults")) as holder:  # the extent query waits on it
        holder.execute('LOCK TABLE "rack" IN ACCESS EXCLUSIVE MODE')
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "run", "--config", str(config_path)]
            + ["--target", str(public)],
            capture_output=True,
            text=True,
            env={**os.environ, "ESS1_DSN": timeout_dsn(cluster, 300)},
            timeout=300,
        )
    line = assert_one_error_line(result, "Error: site 1, table rack: ")
    assert line == (
        "Error: site 1, table rack: finding its first and last day was cancelled by the "
        "server's statement_timeout (set in the DSN's options or for the database user?); "
        "raise or unset it for the export's user"
    )
    assert documents(public) == before
    assert verify(LocalTarget(public)).clean


def test_a_statement_timeout_while_reading_is_named(
    cluster: PgCluster, config_path: Path, public: Path
) -> None:
    before = documents(public)
    result = faulty_run(
        "read-lock", cluster, timeout_dsn(cluster, 300), config_path, public, "--rebuild"
    )
    line = assert_one_error_line(result, "Error: site 1, table rack, day 2022-09-01: ")
    assert line == (
        "Error: site 1, table rack, day 2022-09-01: read was cancelled by the server's "
        "statement_timeout (set in the DSN's options or for the database user?); raise or "
        "unset it for the export's user"
    )
    assert documents(public) == before
    assert_a_plain_run_finishes_the_rebuild(cluster, config_path, public)


def test_a_failed_runs_report_names_the_partition_and_what_was_done_before(
    cluster: PgCluster, config_path: Path, public: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    try:
        result = faulty_run(
            "read",
            cluster,
            cluster.dsn("faults"),
            config_path,
            public,
            "--rebuild",
            "--report",
            str(report),
            day=DAYS[2],
        )
    finally:
        cluster.resume()
    line = assert_one_error_line(result, f"Error: site 1, table rack, day {DAYS[2]}: read failed")
    document = json.loads(report.read_text())
    manifest = json.loads((public / "sites/1/manifest.json").read_text())
    done = [p for p in manifest["tables"]["rack"]["partitions"] if p["date"] in DAYS[:2]]
    assert document == {
        "failed": True,
        "error": line.removeprefix("Error: "),
        "stage": "export",
        "partitions_planned": 3,
        "partitions_exported": 2,  # a rebuild sends every file again
        "partitions_unchanged": 0,
        "partitions_failed": [f"1/rack/{DAYS[2]}"],
        "rows": sum(p["rows"] for p in done),
        "bytes_sent": sum(f["bytes"] for p in done for f in p["files"].values()),
        "requests": document["requests"],
        "seconds": document["seconds"],
        "sites": [],
        "unnamed_objects": [],
        "emptied_files": [],
        "leftover_files": [],
        "recovered": [],
        "pruned": False,
        "dry_run": False,
    }
    assert document["requests"] > 0 and document["seconds"] > 0


def test_a_report_of_a_run_that_failed_while_planning(
    cluster: PgCluster, config_path: Path, public: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    try:
        result = faulty_run(
            "before-fingerprints",
            cluster,
            cluster.dsn("faults"),
            config_path,
            public,
            "--full-check",
            "--report",
            str(report),
        )
    finally:
        cluster.resume()
    line = assert_one_error_line(result, "Error: site 1, table rack: fingerprinting its days")
    document = json.loads(report.read_text())
    assert document == {
        "failed": True,
        "error": line.removeprefix("Error: "),
        "stage": "plan",
        "partitions_planned": 0,
        "partitions_exported": 0,
        "partitions_unchanged": 0,
        "partitions_failed": [],
        "rows": 0,
        "bytes_sent": 0,
        "requests": document["requests"],
        "seconds": document["seconds"],
        "sites": [],
        "unnamed_objects": [],
        "emptied_files": [],
        "leftover_files": [],
        "recovered": [],
        "pruned": False,
        "dry_run": False,
    }
