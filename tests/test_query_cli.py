"""`ess-export query` and `ess-export sql` as a user runs them: a process, its output and code.

The processes of each table of cases start together (Python's start-up is most of their
time), then every case checks its own result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
RACK = ["--site", "1", "--table", "rack"]
WINDOW = ["--start", "2022-09-01T10:00:00", "--end", "2022-09-01T12:00:00"]


Result = subprocess.CompletedProcess[str]


def ess_export(*args: str, env: dict[str, str] | None = None) -> Result:
    # A local root never uses the cache: point it where nothing can be written.
    env = {**os.environ, "ESS_EXPORT_CACHE": "/dev/null/no-cache", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    # Decoded by hand: text mode would turn the "\r\n" inside quoted CSV fields into "\n".
    return Result(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def run_all(
    cases: dict[str, Sequence[str]], root: str, env: dict[str, str] | None = None
) -> dict[str, Result]:
    def one(args: Sequence[str]) -> Result:
        return ess_export(*(a.replace("ROOT", root) for a in args), env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cases, pool.map(one, cases.values()), strict=True))


# --- expected failures: exit 2, one line naming the bad value and the choices -------------

FAILURES: dict[str, tuple[list[str], str]] = {
    "page-0": (["query", "ROOT", *RACK, "--page", "0"], "Invalid page. '0' is not a page number"),
    "page-negative": (["query", "ROOT", *RACK, "--page=-1"], "Invalid page. '-1'"),
    "page-abc": (["query", "ROOT", *RACK, "--page", "abc"], "Invalid page. 'abc'"),
    "page-1.0": (["query", "ROOT", *RACK, "--page", "1.0"], "Invalid page. '1.0'"),
    "page-past-end": (
        ["query", "ROOT", *RACK, *WINDOW, "--bank", "1", "--rack", "1", "--page", "2"],
        "Invalid page. Page 2 is past the end: 25 row(s) make 1 page(s) of 100",
    ),
    "page-size": (["query", "ROOT", *RACK, "--page-size", "0"], "Invalid page size '0'"),
    "month-13": (
        ["query", "ROOT", *RACK, "--start", "2022-13-01"],
        "start '2022-13-01' is not an ISO 8601 time; use e.g. 2022-09-01T10:00:00",
    ),
    "start-year-1": (
        ["query", "ROOT", *RACK, "--start", "0001-01-01T00:00:00"],
        "start 0001-01-01T00:00:00 is out of range: give a time from 0001-01-02 to 9999-12-30",
    ),
    "end-year-9999-west": (
        ["query", "ROOT", *RACK, "--end", "9999-12-31T23:59:59-09:00"],
        "end 9999-12-31T23:59:59-09:00 is out of range: give a time from 0001-01-02 to",
    ),
    "end-before-start": (
        ["query", "ROOT", *RACK, "--start", "2022-09-02", "--end", "2022-09-01T23:00"],
        "end 2022-09-01T23:00 is before start 2022-09-02",
    ),
    "unknown-field": (
        ["query", "ROOT", *RACK, "--fields", "timestamp,soc"],
        "unknown field 'soc' in table rack of site 1; fields: timestamp, bank_id, rack_id,",
    ),
    "unknown-site": (
        ["query", "ROOT", "--site", "3", "--table", "rack"],
        "unknown site '3'; sites: 1, 2",
    ),
    "unknown-table": (
        ["query", "ROOT", "--site", "2", "--table", "cell"],
        "unknown table 'cell' for site 2; tables: bank, etc, pcs, rack",
    ),
    "bank-on-pcs": (
        ["query", "ROOT", "--site", "2", "--table", "pcs", "--bank", "1"],
        "table pcs of site 2 has no bank_id column, so it cannot be filtered by bank",
    ),
    "sql-read-file": (
        ["sql", "ROOT", "SELECT * FROM read_csv('/etc/passwd')"],
        "the SQL can read only the views (bank, etc, pcs, rack, bank_1,",
    ),
    "sql-install": (["sql", "ROOT", "INSTALL httpfs"], "only a read-only SELECT is allowed"),
    "sql-attach": (["sql", "ROOT", "ATTACH '/tmp/x.db'"], "only a read-only SELECT is allowed"),
    "sql-copy": (
        ["sql", "ROOT", "COPY rack TO '/tmp/rack.csv'"],
        "only a read-only SELECT is allowed, not COPY",
    ),
    "sql-set": (
        ["sql", "ROOT", "SET enable_external_access = true"],
        "only a read-only SELECT is allowed, not SET",
    ),
    "sql-syntax": (["sql", "ROOT", "SELEC 1"], 'Parser Error: syntax error at or near "SELEC"'),
}


@pytest.fixture(scope="module")
def failures(published: Path) -> dict[str, Result]:
    return run_all({name: args for name, (args, _) in FAILURES.items()}, str(published))


@pytest.mark.parametrize("name", list(FAILURES))
def test_expected_failures_are_one_line_and_exit_2(failures: dict[str, Result], name: str) -> None:
    result = failures[name]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert FAILURES[name][1] in result.stderr
    assert result.stdout == ""


# --- answers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def answers(published: Path) -> dict[str, Result]:
    return run_all(
        {
            "json": ["query", "ROOT", *RACK, "--bank", "1", "--rack", "1",
                     "--fields", "timestamp,rack_soc", *WINDOW, "--page", "1"],
            "json-page-2": ["query", "ROOT", *RACK, "--page", "2", "--page-size", "2",
                            "--start", "2022-09-01T23:59:59.999999"],
            "csv-all": ["query", "ROOT", "--site", "2", "--table", "bank", "--format", "csv"],
            "csv-page": ["query", "ROOT", *RACK, "--format", "csv", "--page", "1",
                         "--page-size", "3"],
            "table": ["query", "ROOT", "--site", "1", "--table", "etc", "--format", "table",
                      "--page-size", "2"],
            "empty": ["query", "ROOT", *RACK, "--start", "2030-01-01"],
            "sql": ["sql", "ROOT", "SELECT site, count(*) AS n FROM etc GROUP BY 1 ORDER BY 1",
                    "--format", "json"],
            "sql-table": ["sql", "ROOT", "FROM rack_2 SELECT rack_module_fault LIMIT 1"],
            "help-query": ["query", "--help"],
            "help-sql": ["sql", "--help"],
        },
        str(published),
    )  # fmt: skip


def ok(result: Result) -> str:
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def test_json_page_is_the_old_api_answer(answers: dict[str, Result]) -> None:
    document = json.loads(ok(answers["json"]))
    assert (document["count"], document["next"], document["previous"]) == (25, None, None)
    assert [list(r) for r in document["results"]] == [["timestamp", "rack_soc"]] * 25
    assert [r["timestamp"] for r in document["results"][:2]] == [
        "2022-09-01T10:00:00+09:00",
        "2022-09-01T10:05:00+09:00",
    ]
    page_2 = json.loads(ok(answers["json-page-2"]))
    assert (page_2["next"], page_2["previous"]) == (3, 1)
    assert [r["timestamp"] for r in page_2["results"]] == ["2022-09-02T00:00:00+09:00"] * 2


def test_csv_without_page_is_the_download(answers: dict[str, Result], published: Path) -> None:
    document = json.loads((published / "sites/2/manifest.json").read_text())
    expected = ""
    for partition in document["tables"]["bank"]["partitions"]:
        text = (published / partition["files"]["csv"]["path"]).read_bytes().decode()
        expected += text if not expected else text.split("\n", 1)[1]
    assert ok(answers["csv-all"]) == expected
    lines = ok(answers["csv-page"]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("timestamp,bank_id,rack_id,rack_soc")


def test_table_and_empty_and_sql(answers: dict[str, Result]) -> None:
    table = ok(answers["table"])
    assert "2022-09-01T00:00:00+09:00" in table
    assert table.endswith("page 1 of 288, 576 row(s); next: 2\n")
    assert json.loads(ok(answers["empty"])) == {
        "count": 0, "next": None, "previous": None, "results": []
    }  # fmt: skip
    assert json.loads(ok(answers["sql"])) == {
        "count": 2, "results": [{"site": "1", "n": 576}, {"site": "2", "n": 576}]
    }  # fmt: skip
    assert "rack_module_fault" in ok(answers["sql-table"])


def test_help_has_examples_and_says_end_is_inclusive(answers: dict[str, Result]) -> None:
    query_help, sql_help = ok(answers["help-query"]), ok(answers["help-sql"])
    assert "Examples:" in query_help and "Examples:" in sql_help
    assert "--start and --end are both inclusive" in query_help
    assert '"NaN", "inf", "-inf"' in query_help


def test_output_file_and_parquet(published: Path, tmp_path: Path) -> None:
    out = tmp_path / "rack.parquet"
    result = ess_export(
        "query", str(published), *RACK, "--rack", "9", "--format", "parquet", "-o", str(out)
    )
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    table = pq.read_table(out)
    assert table.column("rack_id").to_pylist() == [9]
    assert [p.name for p in tmp_path.iterdir()] == ["rack.parquet"]  # no partial file left
