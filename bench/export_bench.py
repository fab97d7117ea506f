"""Export speed and memory of ess-export against psql \\copy, pandas and a row loop.

Starts a throwaway PostgreSQL cluster, loads one week of site 1's ``rack`` table at 1 Hz
(8 racks, ~691k rows a day), then exports one day and the whole week with each variant.
Every run is its own process: ``seconds`` is the work timed inside it (start-up and imports
excluded; the whole process is ``wall``), peak RSS is its ``ru_maxrss`` from ``os.wait4``.
Prints one table with PASS/MISS per target, writes bench/results/export.json, exits 0.

    .venv/bin/python bench/export_bench.py                          # everything (make bench)
    BENCH_DSN=postgresql://... .venv/bin/python bench/export_bench.py --variant ours \\
        --since 2022-09-01 --until 2022-09-01 --out /tmp/x           # one run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, DAYS, TZ = date(2022, 9, 1), 7, "Asia/Seoul"
DAY_REPEATS = 3
WEEK_BUDGET_S = 120.0  # pandas/row_loop run the week only if 7 x their day median fits
VARIANTS = ("ours", "psql_copy", "pandas", "row_loop")
RESULTS = ROOT / "bench" / "results" / "export.json"
QUERY = 'SELECT * FROM "rack" WHERE "TIMESTAMP" >= %s AND "TIMESTAMP" < %s ORDER BY "TIMESTAMP"'
CONFIG = """\
[export]
formats = ["parquet", "csv"]
[sites.1]
timezone = "Asia/Seoul"
dsn = "${ESS1_DSN}"
[sites.1.tables.rack]
keys = ["BANK_ID", "RACK_ID"]
"""
Row = dict[str, float]


def bounds(since: date, until: date) -> tuple[str, str]:
    """The local days [since, until] as timestamptz literals."""
    return f"{since} 00:00:00+09", f"{until + timedelta(days=1)} 00:00:00+09"


# ----------------------------------------------------------------- in the child process


def run_ours(dsn: str, since: date, until: date, out: Path) -> float:
    from exporter.config import load
    from exporter.pipeline import run

    config_path = out.with_suffix(".toml")  # beside the output folder, not in it
    config_path.write_text(CONFIG)
    try:
        started = time.perf_counter()
        config = load(config_path, env={"ESS1_DSN": dsn})
        run(
            config,
            target=str(out),
            sites=["1"],
            tables=["rack"],
            since=since,
            until=until,
            rebuild=True,
        )
        return time.perf_counter() - started
    finally:
        config_path.unlink()


def run_psql_copy(dsn: str, since: date, until: date, out: Path) -> float:
    low, high = bounds(since, until)
    copy = (
        f'\\copy (SELECT * FROM "rack" WHERE "TIMESTAMP" >= \'{low}\' AND "TIMESTAMP" < '
        f"'{high}' ORDER BY \"TIMESTAMP\") to '{out}/rack.csv' csv header"
    )
    psql = os.environ.get("BENCH_PSQL") or shutil.which("psql") or "psql"
    started = time.perf_counter()
    subprocess.run([psql, "-X", "-q", dsn, "-c", copy], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_pandas(dsn: str, since: date, until: date, out: Path) -> float:
    import warnings

    import pandas as pd
    import psycopg

    # pandas warns that it only tests SQLAlchemy connectables; a DB-API connection works.
    warnings.filterwarnings("ignore", message=".*SQLAlchemy", category=UserWarning)
    started = time.perf_counter()
    with psycopg.connect(dsn, options=f"-c TimeZone={TZ}") as conn:
        frame = pd.read_sql(QUERY, conn, params=bounds(since, until))
    frame.to_csv(out / "rack.csv", index=False)
    frame.to_parquet(out / "rack.parquet", engine="pyarrow", compression="zstd", index=False)
    return time.perf_counter() - started


def run_row_loop(dsn: str, since: date, until: date, out: Path) -> float:
    import csv

    import psycopg
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg.rows import dict_row

    started = time.perf_counter()
    with (
        psycopg.connect(dsn, options=f"-c TimeZone={TZ}") as conn,
        conn.cursor("export", row_factory=dict_row) as cur,
        open(out / "rack.csv", "w", newline="") as f,
    ):
        cur.itersize = 10_000
        cur.execute(QUERY, bounds(since, until))
        names = [c.name for c in cur.description or ()]
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        columns: dict[str, list[object]] = {name: [] for name in names}
        for row in cur:
            writer.writerow(row)
            for name, value in row.items():
                columns[name].append(value)
    pq.write_table(pa.table(columns), out / "rack.parquet", compression="zstd")
    return time.perf_counter() - started


RUNNERS: dict[str, Callable[[str, date, date, Path], float]] = {
    "ours": run_ours,
    "psql_copy": run_psql_copy,
    "pandas": run_pandas,
    "row_loop": run_row_loop,
}


def load_week(dsn: str) -> Row:
    """Create site 1's rack table and COPY the week in, one day at a time."""
    import psycopg

    from exporter.demo import generate
    from tests.support.seed import copy_arrow, create_tables

    timings = {"generate_s": 0.0, "copy_s": 0.0}
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_tables(conn, "1", ["rack"])
        for d in range(DAYS):
            t0 = time.perf_counter()
            data = generate("1", "rack", START + timedelta(days=d), 1, interval_s=1)
            t1 = time.perf_counter()
            copy_arrow(conn, "rack", data)
            timings["generate_s"] += t1 - t0
            timings["copy_s"] += time.perf_counter() - t1
        t0 = time.perf_counter()
        # VACUUM as well: it sets hint bits, so the first measured reader does not pay for them.
        conn.execute('VACUUM (ANALYZE) "rack"')
        timings["vacuum_analyze_s"] = time.perf_counter() - t0
        cur = conn.execute("SELECT count(*), pg_total_relation_size('rack') FROM rack")
        rows, size = cur.fetchone() or (0, 0)
    return {k: round(v, 2) for k, v in timings.items()} | {"rows": rows, "table_bytes": size}


# ----------------------------------------------------------------- in the parent process


@dataclass
class Sample:
    variant: str
    scope: str
    seconds: float
    wall: float
    rss_mb: float
    bytes: int


def child(args: list[str], env: dict[str, str]) -> tuple[dict[str, float], float, float]:
    """Run this script in a child: its JSON answer, wall seconds and peak RSS in MB.

    The parent stays small (no pyarrow): a child's ru_maxrss starts at its parent's.
    """
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed with exit code {proc.returncode}")
    return json.loads(output.decode().splitlines()[-1]), wall, usage.ru_maxrss / 1024


def measure(variant: str, scope: str, env: dict[str, str], work: Path) -> Sample:
    until = START + timedelta(days=0 if scope == "day" else DAYS - 1)
    out = Path(tempfile.mkdtemp(prefix=f"{variant}-{scope}-", dir=work))
    args = ["--variant", variant, "--since", str(START), "--until", str(until), "--out", str(out)]
    try:
        answer, wall, rss = child(args, env)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rss = answer.get("rss_mb", rss)  # psql_copy: psql's own peak, not the Python runner's
    sample = Sample(variant, scope, round(answer["seconds"], 3), round(wall, 3), rss, size)
    print(
        f"  {variant:<10} {scope:<5} {sample.seconds:7.2f} s  wall {wall:7.2f} s"
        f"  {rss:7.1f} MB  {size / 1e6:7.1f} MB out",
        flush=True,
    )
    return sample


def summarise(samples: list[Sample]) -> dict[tuple[str, str], Row]:
    """Per variant and scope: median seconds and wall, highest peak RSS, output bytes."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.variant, sample.scope), []).append(sample)
    return {
        key: {
            "runs": len(mine),
            "seconds": round(statistics.median(s.seconds for s in mine), 3),
            "wall": round(statistics.median(s.wall for s in mine), 3),
            "peak_rss_mb": round(max(s.rss_mb for s in mine), 1),
            "bytes": mine[-1].bytes,
        }
        for key, mine in groups.items()
    }


TARGETS = [  # (name, numerator, denominator, measure, comparison, goal)
    ("ours/psql_copy day", ("ours", "day"), ("psql_copy", "day"), "seconds", "<=", 1.5),
    ("ours/psql_copy week", ("ours", "week"), ("psql_copy", "week"), "seconds", "<=", 1.5),
    ("pandas/ours day", ("pandas", "day"), ("ours", "day"), "seconds", ">=", 8),
    ("pandas/ours week", ("pandas", "week"), ("ours", "week"), "seconds", ">=", 8),
    ("row_loop/ours day", ("row_loop", "day"), ("ours", "day"), "seconds", ">=", 8),
    ("row_loop/ours week", ("row_loop", "week"), ("ours", "week"), "seconds", ">=", 8),
    ("ours RSS week/day", ("ours", "week"), ("ours", "day"), "peak_rss_mb", "<=", 1.3),
]


def targets(rows: dict[tuple[str, str], Row]) -> list[dict[str, object]]:
    """PASS/MISS per target whose two rows were measured."""
    checks: list[dict[str, object]] = []
    for name, num, den, key, op, goal in TARGETS:
        if num in rows and den in rows:
            ratio = rows[num][key] / rows[den][key]
            ok = ratio <= goal if op == "<=" else ratio >= goal
            result = "PASS" if ok else "MISS"
            checks.append(
                dict(target=name, ratio=round(ratio, 2), goal=f"{op} {goal}", result=result)
            )
    return checks


def benchmark() -> None:
    from tests.support.pgcluster import PgCluster

    notes = [
        "seconds: median of the work inside the process (imports excluded); wall: whole process",
        "ours writes parquet + csv per local day (7 of each for the week) plus manifest, "
        "catalog and datapackage, fsyncing each file; the others write one file per format "
        "without fsync; psql_copy writes CSV only",
        "psql_copy peak RSS is psql's own, floored at its Python runner's size (~16 MB)",
    ]
    samples: list[Sample] = []
    cluster = PgCluster.start()
    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        env = {**os.environ, "BENCH_DSN": cluster.create_database("ess1"), "PGTZ": TZ}
        env["BENCH_PSQL"] = str(cluster.bindir / "psql")
        print(f"loading {DAYS} days of site 1 rack at 1 Hz ...", flush=True)
        load, wall, _ = child(["--load"], env)
        load["total_s"] = round(wall, 2)
        print(f"  {load}\nwarm-up (psql_copy week, not counted)", flush=True)
        measure("psql_copy", "week", env, work)
        for i in range(DAY_REPEATS):  # rounds interleave the variants against machine drift
            print(f"day, round {i + 1}/{DAY_REPEATS}", flush=True)
            samples += [measure(v, "day", env, work) for v in VARIANTS]
        print("week", flush=True)
        day = summarise(samples)
        for variant in VARIANTS:
            estimate = day[variant, "day"]["seconds"] * DAYS
            if variant in ("pandas", "row_loop") and estimate > WEEK_BUDGET_S:
                notes.append(
                    f"{variant}: week not run, 7 x its day median = {estimate:.0f} s "
                    f"> {WEEK_BUDGET_S:.0f} s budget; day only"
                )
                print(f"  {variant:<10} week  skipped ({estimate:.0f} s estimated)", flush=True)
            else:
                samples.append(measure(variant, "week", env, work))
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(load, summarise(samples), samples, notes)


def report(
    load: Row, rows: dict[tuple[str, str], Row], samples: list[Sample], notes: list[str]
) -> None:
    checks = targets(rows)
    header = ("variant", "scope", "runs", "seconds", "wall s", "peak MB", "out MB")
    print("\n{:<10} {:<5} {:>4} {:>8} {:>8} {:>8} {:>8}".format(*header))
    for (variant, scope), r in rows.items():
        print(
            f"{variant:<10} {scope:<5} {r['runs']:>4} {r['seconds']:>8.2f} {r['wall']:>8.2f}"
            f" {r['peak_rss_mb']:>8.1f} {r['bytes'] / 1e6:>8.1f}"
        )
    print()
    for c in checks:
        print(f"{c['result']:<4}  {c['target']:<22} {c['ratio']:>7.2f}  (target {c['goal']})")
    for note in notes:
        print(f"note: {note}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": load,
        "summary": [{"variant": v, "scope": s, **r} for (v, s), r in rows.items()],
        "targets": checks,
        "samples": [asdict(s) for s in samples],
        "notes": notes,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=list(RUNNERS), help="export once, print JSON")
    parser.add_argument("--load", action="store_true", help="load the week, print JSON")
    parser.add_argument("--since", type=date.fromisoformat, default=START)
    parser.add_argument("--until", type=date.fromisoformat, default=START)
    parser.add_argument("--out", type=Path, help="output folder of --variant")
    args = parser.parse_args()
    dsn = os.environ.get("BENCH_DSN", "")
    if (args.variant or args.load) and not dsn:
        parser.error("--variant and --load need BENCH_DSN in the environment")
    if args.load:
        print(json.dumps(load_week(dsn)))
    elif args.variant:
        if args.out is None:
            parser.error("--variant needs --out")
        args.out.mkdir(parents=True, exist_ok=True)
        seconds = RUNNERS[args.variant](dsn, args.since, args.until, args.out)
        answer = {"seconds": seconds}
        if args.variant == "psql_copy":  # psql's peak (it starts at this runner's size)
            answer["rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(answer))
    else:
        benchmark()


if __name__ == "__main__":
    main()
