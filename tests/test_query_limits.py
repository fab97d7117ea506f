"""Every query is bounded: time, memory, temporary files; and a Dataset serves many threads.

Figures are generous upper bounds that prove a limit works, never timings to meet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from exporter.query import Dataset, QueryError
from exporter.query.engine import default_memory, default_threads
from tests.test_query_remote import serve_http, table_rows

ROOT = Path(__file__).resolve().parents[1]
RUNAWAY = "SELECT count(*) FROM rack a, rack b, rack c"
# About 2 GB of string: over any limit below.
HUNGRY = "SELECT length(string_agg(repeat('x', 1000), '')) AS n FROM range(2000000)"
# Sorting 2M rows of 32-character strings needs more than 100MB: it spills.
SPILLING = (
    "SELECT h FROM (SELECT md5(i::VARCHAR) AS h FROM range(2000000) t(i) ORDER BY h) "
    "LIMIT 1 OFFSET 1999999"
)


def ess_export(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESS_EXPORT_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


def test_a_runaway_join_stops_at_its_time_limit(published: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = ess_export(
        "sql", str(published), RUNAWAY, "--timeout", "2", cwd=tmp_path, cache=tmp_path / "c"
    )
    assert time.monotonic() - started < 30  # stopped: it would run for hours
    assert one_line(result) == (
        "Error: the query ran into its time limit of 2 s and was stopped; narrow it, or "
        "raise the limit with --timeout SECONDS (Dataset.open(timeout=))\n"
    )


def test_a_question_has_a_time_limit_too(published: Path) -> None:
    with Dataset.open(str(published), timeout=1e-9) as dataset:
        with pytest.raises(QueryError, match=r"^the query ran into its time limit of 1e-09 s"):
            dataset.query("1", "rack", start="2022-09-01T10:00:00", end="2022-09-01T12:00:00")
        with pytest.raises(QueryError, match="time limit"):
            dataset.rows("1", "rack").read_all()
        with pytest.raises(QueryError, match="time limit"):
            dataset.sql("SELECT count(*) FROM rack")


def test_a_query_over_the_memory_limit_fails_cleanly(published: Path, tmp_path: Path) -> None:
    result = ess_export(
        "sql", str(published), HUNGRY, "--memory", "200MB", cwd=tmp_path, cache=tmp_path / "c"
    )
    assert one_line(result) == (
        "Error: the query needs more than its memory limit of 200MB; narrow it, or raise "
        "the limit with --memory SIZE, e.g. --memory 8GB (Dataset.open(memory=))\n"
    )


def test_spilling_stays_in_the_cache_folder(published: Path, tmp_path: Path) -> None:
    """A sort larger than memory spills into the cache folder, nowhere else, within its cap."""
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    tmp_before = {p.name for p in Path("/tmp").iterdir()}
    args = ["sql", str(published), SPILLING, "--memory", "100MB", "--threads", "1"]
    capped = ess_export(*args, "--temp-limit", "1MB", cwd=work, cache=cache)
    assert one_line(capped).startswith(
        "Error: the query's temporary files reached their limit of 1MB; narrow it, or raise"
    )
    done = ess_export(*args, "--format", "json", cwd=work, cache=cache)
    assert done.returncode == 0, done.stderr
    assert '"count": 1' in done.stdout
    assert list(work.iterdir()) == []  # DuckDB's default would be ./.tmp
    assert [p.relative_to(cache).as_posix() for p in cache.rglob("*")] == ["tmp"]  # cleaned up
    new_in_tmp = {p.name for p in Path("/tmp").iterdir()} - tmp_before
    assert not [n for n in new_in_tmp if "duckdb" in n or n == ".tmp"]


def test_limits_are_set_in_the_database(published: Path) -> None:
    with Dataset.open(str(published), memory="256MiB", threads=1) as dataset:
        settings = dict(
            dataset.connection.sql(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('memory_limit', 'threads', 'max_temp_directory_size', 'lock_configuration', "
                "'enable_external_access')"
            ).fetchall()
        )
    assert settings == {
        "memory_limit": "256.0 MiB",
        "threads": "1",
        "max_temp_directory_size": "10.0 GiB",
        "lock_configuration": "true",
        "enable_external_access": "false",
    }
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert int(default_memory().removesuffix("MiB")) <= total // 4 // 2**20
    assert 1 <= default_threads() <= 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "Invalid value for '--timeout': 0.0 is not in the range x>0."),
        (["--memory", "lots"], "Invalid value for '--memory': 'lots' is not a size; give e.g."),
        (["--threads", "0"], "Invalid value for '--threads': 0 is not in the range x>=1."),
        (["--temp-limit", "1 parsec"], "Invalid value for '--temp-limit': '1 parsec' is not a"),
        (["--site", "1", "--table", "etc", "--memory", "x"], "Invalid value for '--memory': 'x'"),
    ],
    ids=["timeout", "memory", "threads", "temp-limit", "query-memory"],
)
def test_bad_limits_are_usage_errors(
    published: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    command = ["query", str(published)] if "--site" in args else ["sql", str(published), "SELECT 1"]
    result = ess_export(*command, *args, cwd=tmp_path, cache=tmp_path)
    assert result.returncode == 2 and message in result.stderr


# --- threads ------------------------------------------------------------------------------

QUESTIONS: list[tuple[str, dict[str, Any]]] = [
    ("query", {"site": "1", "table": "rack", "bank": 1, "rack": 1,
               "start": "2022-09-01T10:00:00", "end": "2022-09-01T12:00:00"}),
    ("query", {"site": "2", "table": "bank", "page": "last", "page_size": 7}),
    ("rows", {"site": "1", "table": "pcs", "fields": "timestamp,bank_id"}),
    ("rows", {"site": "2", "table": "etc", "start": "2022-09-01T20:00:00"}),
    # Rounded: parallel sums may add in another order.
    ("sql", {"statement": "SELECT site, date, count(*), round(avg(rack_soc), 9) FROM rack"
                          " GROUP BY ALL ORDER BY ALL"}),
    ("sql", {"statement": "SELECT count(*) FROM bank_1 JOIN rack_1 USING (timestamp, bank_id)"}),
    ("sql", {"statement": "SELECT table_name FROM information_schema.tables ORDER BY 1"}),
    ("sql", {"statement": "FROM etc_2 ORDER BY timestamp DESC LIMIT 50"}),
]  # fmt: skip


def ask(dataset: Dataset, kind: str, question: dict[str, Any]) -> pa.Table:
    if kind == "query":
        return dataset.query(**question).to_arrow()
    if kind == "rows":
        return dataset.rows(**question).read_all()
    return dataset.sql(question["statement"])


@pytest.mark.parametrize("kind", ["directory", "http"])
def test_eight_threads_share_a_dataset(published: Path, tmp_path: Path, kind: str) -> None:
    def answers(uri: str) -> list[pa.Table]:
        with Dataset.open(uri, cache_dir=tmp_path / "serial") as dataset:
            return [ask(dataset, k, q) for k, q in QUESTIONS]

    with serve_http(published) as http:
        uri = str(published) if kind == "directory" else http.url
        serial = answers(uri)
        with Dataset.open(uri, cache_dir=tmp_path / "shared") as dataset:
            start = threading.Barrier(8)

            def worker(n: int) -> list[tuple[int, pa.Table]]:
                start.wait(timeout=60)  # all eight ask at once
                order = [(n + i) % len(QUESTIONS) for i in range(len(QUESTIONS))]
                return [(i, ask(dataset, *QUESTIONS[i])) for i in order]

            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(worker, range(8)))
    assert len(results) == 8
    for answered in results:
        for i, table in answered:
            assert table.schema == serial[i].schema, QUESTIONS[i]
            assert table_rows(table) == table_rows(serial[i]), QUESTIONS[i]


def test_threads_that_ended_hand_their_cursor_on(published: Path) -> None:
    """A server with a thread per request must not keep a cursor per request served."""
    with Dataset.open(str(published)) as dataset:
        counts = []
        for _ in range(20):
            thread = threading.Thread(
                target=lambda: counts.append(dataset.sql("SELECT count(*) FROM etc_1").num_rows)
            )
            thread.start()
            thread.join(timeout=60)
        assert counts == [1] * 20
        assert dataset._get_engine().cursors == 1
