"""Query latency: the query helper over published Parquet vs PostgreSQL with an index.

Loads one week of site 1's ``rack`` table at 1 Hz (8 racks, ~691k rows a day) into a
throwaway PostgreSQL cluster (indexed on "TIMESTAMP"), publishes it with
``exporter.pipeline.run`` into a temporary folder, then asks both the same questions:

    window   a 2-hour window of one rack, 2 fields (every row, ~7,200 of them)
    page     the same window as the old API's page 1 (count + 100 rows)
    day      one day of one rack, all 12 fields (86,400 rows)
    week     a one-week aggregate: daily mean SOC per rack (56 rows from 4.8M)

and times the CSV download (`ess-export query --format csv`, no --page) of a day and of
the week with its peak memory, which streaming keeps near one day's.

Ours goes through the Python API (`Dataset.rows` / `query` / `sql`, Arrow or polars out),
PostgreSQL through psycopg (`fetchall`, Python tuples: what a client of the old service
got). ``cold`` is the first call on a new Dataset / new connection (the OS file cache is
warm: the files were just written); ``warm`` is the median of the next calls. With
moto[server] installed the same questions run against an s3:// copy too (cold includes
fetching into an empty cache, one per question).
Targets (local publish, warm medians): window ≤ PostgreSQL's, week ≥ 5× faster.

    .venv/bin/python bench/query_bench.py [--repeats 15] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from exporter.config import load  # noqa: E402
from exporter.demo import generate  # noqa: E402
from exporter.pipeline import run  # noqa: E402
from exporter.query import Dataset  # noqa: E402
from tests.support.pgcluster import PgCluster  # noqa: E402
from tests.support.seed import copy_arrow, create_tables  # noqa: E402

START, DAYS, TZ = date(2022, 9, 1), 7, "Asia/Seoul"
CONFIG = """\
[export]
formats = ["parquet"]
[sites.1]
timezone = "Asia/Seoul"
dsn = "${ESS1_DSN}"
[sites.1.tables.rack]
keys = ["BANK_ID", "RACK_ID"]
"""
WINDOW = {"start": "2022-09-03T10:00:00", "end": "2022-09-03T12:00:00"}
DAY = {"start": "2022-09-04T00:00:00", "end": "2022-09-04T23:59:59.999999"}
WEEK_SQL = (
    "SELECT date, bank_id, rack_id, avg(rack_soc) AS soc FROM rack_1 GROUP BY ALL ORDER BY ALL"
)
PG_WINDOW = (
    'SELECT "TIMESTAMP", "RACK_SOC" FROM rack WHERE "BANK_ID" = 1 AND "RACK_ID" = 3 '
    "AND \"TIMESTAMP\" >= '2022-09-03 10:00:00+09' AND \"TIMESTAMP\" <= '2022-09-03 12:00:00+09' "
    'ORDER BY "TIMESTAMP", "BANK_ID", "RACK_ID", "RACK_SOC"'
)
PG_PAGE_COUNT = PG_WINDOW.replace('"TIMESTAMP", "RACK_SOC"', "count(*)", 1).split(" ORDER BY")[0]
PG_DAY = (
    'SELECT * FROM rack WHERE "BANK_ID" = 1 AND "RACK_ID" = 3 '
    "AND \"TIMESTAMP\" >= '2022-09-04 00:00:00+09' AND \"TIMESTAMP\" < '2022-09-05 00:00:00+09' "
    'ORDER BY "TIMESTAMP"'
)
PG_WEEK = (
    'SELECT ("TIMESTAMP" AT TIME ZONE \'Asia/Seoul\')::date AS day, "BANK_ID", "RACK_ID", '
    'avg("RACK_SOC") FROM rack GROUP BY 1, 2, 3 ORDER BY 1, 2, 3'
)
TARGETS = {"window": 1.0, "week": 5.0}
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss)
sys.exit(1 if status else 0)
"""  # PostgreSQL median / ours median, at least


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Cold (first call) and warm (median of the rest) latency in milliseconds."""
    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return {
        "cold_ms": round(seconds[0] * 1000, 2),
        "warm_ms": round(statistics.median(seconds[1:]) * 1000, 2),
    }


def load_week(pg: PgCluster) -> str:
    dsn = pg.create_database("bench")
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_tables(conn, "1", ["rack"])  # with the index on "TIMESTAMP"
        for offset in range(DAYS):
            day = START + timedelta(days=offset)
            copy_arrow(conn, "rack", generate("1", "rack", day, 1, interval_s=1))
        conn.execute("VACUUM ANALYZE rack")
    return dsn


def publish(dsn: str, folder: Path) -> float:
    config_path = folder / "bench.toml"
    config_path.write_text(CONFIG)
    started = time.perf_counter()
    run(load(config_path, env={"ESS1_DSN": dsn}), target=str(folder / "public"))
    return time.perf_counter() - started


def ours(open_dataset: Callable[[], Dataset], repeats: int) -> dict[str, dict[str, float]]:
    """Each question on a new Dataset: its first call is the cold one."""
    questions: dict[str, Callable[[Dataset], Any]] = {
        "window": lambda d: d.rows("1", "rack", 1, 3, "timestamp,rack_soc", **WINDOW).read_all(),
        "page": lambda d: d.query("1", "rack", 1, 3, "timestamp,rack_soc", **WINDOW, page=1),
        "day": lambda d: d.rows("1", "rack", 1, 3, None, **DAY).read_all(),
        "week": lambda d: d.sql(WEEK_SQL),
    }
    results = {}
    for name, question in questions.items():
        with open_dataset() as dataset:
            results[name] = timed(lambda q=question, d=dataset: q(d), repeats)
    return results


def postgres(dsn: str, repeats: int) -> dict[str, dict[str, float]]:
    def page(conn: psycopg.Connection) -> None:
        conn.execute(PG_PAGE_COUNT).fetchone()
        conn.execute(PG_WINDOW + " LIMIT 100").fetchall()

    questions: dict[str, Callable[[psycopg.Connection], Any]] = {
        "window": lambda c: c.execute(PG_WINDOW).fetchall(),
        "page": page,
        "day": lambda c: c.execute(PG_DAY).fetchall(),
        "week": lambda c: c.execute(PG_WEEK).fetchall(),
    }
    results = {}
    for name, question in questions.items():
        with psycopg.connect(dsn) as conn:
            results[name] = timed(lambda q=question, c=conn: q(c), repeats)
    return results


def check_same_answers(dataset: Dataset, dsn: str) -> None:
    """The figures mean nothing unless both sides answer the same."""
    window = dataset.rows("1", "rack", 1, 3, "timestamp,rack_soc", **WINDOW).read_all()
    week = dataset.sql(WEEK_SQL)
    with psycopg.connect(dsn) as conn:
        # 7,201 readings, plus the demo's occasional duplicate rows.
        assert window.num_rows == len(conn.execute(PG_WINDOW).fetchall()) >= 7201
        expected = conn.execute(PG_WEEK).fetchall()
    got = [tuple(r.values()) for r in week.to_pylist()]
    assert len(got) == len(expected) == DAYS * 8
    assert all(abs(a[3] - b[3]) < 1e-9 for a, b in zip(got, expected, strict=True))


def s3_results(public: Path, repeats: int) -> dict[str, Any] | None:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        return None
    from exporter.storage import S3Target

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        client.create_bucket(Bucket="bench")
        for path in sorted(public.rglob("*")):
            if path.is_file():
                key = f"public/{path.relative_to(public).as_posix()}"
                client.put_object(Bucket="bench", Key=key, Body=path.read_bytes())
        with tempfile.TemporaryDirectory(prefix="query-bench-cache-") as cache:

            def open_s3() -> Dataset:
                # An empty cache for each question: its cold call fetches its files.
                target = S3Target("s3://bench/public", client)
                fresh = tempfile.mkdtemp(dir=cache)
                return Dataset.open(target.uri, target=target, cache_dir=fresh)

            return ours(open_s3, repeats)
    finally:
        server.stop()


def download(public: Path) -> dict[str, dict[str, float]]:
    """`ess-export query --format csv` of a day and of the week: time and peak memory.

    Streamed a day at a time, the week should need about the memory of one day.
    """
    results = {}
    for name, extra in (("day", ["--start", "2022-09-04", "--end", "2022-09-04T23:59:59"]),
                        ("week", [])):  # fmt: skip
        command = [sys.executable, "-m", "exporter", "query", str(public), "--site", "1",
                   "--table", "rack", "--format", "csv", "-o", os.devnull, *extra]  # fmt: skip
        started = time.perf_counter()
        # A child's ru_maxrss starts at its parent's size at fork: start it from a small
        # launcher, not from this (large) process.
        launched = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *command], cwd=ROOT, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
        results[name] = {
            "seconds": round(time.perf_counter() - started, 2),
            "peak_mb": round(int(launched.stdout) / 1024, 1),
        }
    return results


def report(results: dict[str, Any]) -> None:
    pg = results["postgres"]
    print(f"\n{'question':<8} {'side':<10} {'cold ms':>9} {'warm ms':>9}  vs PostgreSQL")
    for name in ("window", "page", "day", "week"):
        for side in ("postgres", "local", "s3"):
            if not results.get(side):
                continue
            figures = results[side][name]
            ratio = pg[name]["warm_ms"] / figures["warm_ms"]
            note = "" if side == "postgres" else f"{ratio:5.1f}x faster (warm)"
            if side == "local" and name in TARGETS:
                note += "  PASS" if ratio >= TARGETS[name] else "  MISS"
            print(f"{name:<8} {side:<10} {figures['cold_ms']:>9} {figures['warm_ms']:>9}  {note}")
    for name, figures in results["download"].items():
        print(f"csv download, {name}: {figures['seconds']} s, peak RSS {figures['peak_mb']} MB")
    print(f"\npublish of the week: {results['publish_s']:.1f} s; machine: {results['machine']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="warm calls per question")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    with PgCluster.start() as pg, tempfile.TemporaryDirectory(prefix="query-bench-") as tmp:
        started = time.perf_counter()
        dsn = load_week(pg)
        print(f"loaded PostgreSQL in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        folder = Path(tmp)
        results: dict[str, Any] = {"publish_s": round(publish(dsn, folder), 2)}
        public = folder / "public"
        with Dataset.open(str(public)) as dataset:
            check_same_answers(dataset, dsn)
        results["postgres"] = postgres(dsn, args.repeats)
        results["local"] = ours(lambda: Dataset.open(str(public)), args.repeats)
        results["s3"] = s3_results(public, args.repeats)
        results["download"] = download(public)
        results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
