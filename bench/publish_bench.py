"""Publish costs on S3 (moto): a no-op run and a run that adds one day, over a published year.

Publishes the demo sources for 2022 (2 sites x 4 tables x 365 local days, hourly rows) to
moto's S3 server on 127.0.0.1, then measures a no-op run (median in-process, one whole CLI
process; requests from the run report and on the wire via before-send, against a 30-day
publish's no-op) and a run adding 2023-01-01, relative to that day alone into a fresh prefix
(each repeat starts from a server-side copy of the year). moto runs in a process of its own,
as a store would: its handling of a request costs wall time (about 9 ms a request here) but
not our process's CPU. Prints PASS/MISS per target, writes bench/results/publish.json,
exits 0. Run: .venv/bin/python bench/publish_bench.py
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.config import Config, load  # noqa: E402
from exporter.demo import write_sqlite  # noqa: E402
from exporter.pipeline import RunReport, run  # noqa: E402
from exporter.storage import Target, make_s3_client, open_target  # noqa: E402

START, DAYS, SMALL_DAYS, INTERVAL_S = date(2022, 1, 1), 365, 30, 3600
NEW_DAY = START + timedelta(days=DAYS)  # 2023-01-01
NOW = datetime(2023, 6, 1, tzinfo=UTC)  # every day complete, none in the lookback window
LATER = NOW + timedelta(days=1)
NOOP_REPEATS, ADD_REPEATS = 5, 5
BUCKET = "bench"
CONFIG = ROOT / "config" / "demo.toml"
RESULTS = ROOT / "bench" / "results" / "publish.json"


class Wire:
    """Every request of the S3 targets it opens, seen through before-send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def target(self, uri: str, config: Config) -> Target:
        """The target `run` would open for `uri`, with its client's requests recorded."""
        client = make_s3_client(config.s3)
        client.meta.events.register("before-send.s3.*", self._record)
        return open_target(uri, config.s3, client)

    def _record(self, request: Any, **_: Any) -> None:
        self.sent.append((request.method, request.url))


def label(method: str, url: str, prefix: str) -> str:
    """A request as `METHOD key`, day files and pages folded into one label each."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "list-type" in query:
        return "LIST " + query["prefix"][0].removeprefix(prefix + "/")
    key = unquote(parts.path).split(f"/{prefix}/", 1)[-1]
    if key.startswith("data/"):
        key = "data/... (day files)"
    elif key.endswith(".html"):
        key = "....html (pages)"
    return f"{method} {key}"


def timed(wire: Wire, config: Config, prefix: str, **options: Any) -> dict[str, Any]:
    wire.sent.clear()
    started = time.perf_counter()  # opening the target (its client) is part of a run
    target = wire.target(f"s3://{BUCKET}/{prefix}", config)
    report: RunReport = run(config, target=target, **options)
    seconds = time.perf_counter() - started
    kinds = Counter(label(m, u, prefix) for m, u in wire.sent)
    return {
        "seconds": seconds,
        "partitions": report.partitions,
        "requests": report.requests,
        "wire": len(wire.sent),
        "by_kind": dict(sorted(kinds.items())),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time (odd counts), plus every time."""
    chosen = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**chosen, "all_seconds": [round(r["seconds"], 3) for r in runs]}


def keys_under(client: Any, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def copy_prefix(client: Any, source: str, dest: str) -> int:
    keys = keys_under(client, source)

    def one(key: str) -> None:
        copy = {"Bucket": BUCKET, "Key": key}
        client.copy_object(Bucket=BUCKET, Key=dest + key[len(source) :], CopySource=copy)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, keys))
    return len(keys)


def cli_noop(sources: Path, prefix: str, tmp: Path) -> dict[str, Any]:
    """One whole `python -m exporter run` process; its `now` is the real clock (later)."""
    report = tmp / "cli-report.json"
    command = [sys.executable, "-m", "exporter", "run", "--config", str(CONFIG)]
    command += ["--target", f"s3://{BUCKET}/{prefix}", "--report", str(report)]
    env = {**os.environ, "ESS_DEMO_DIR": str(sources)}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    found = json.loads(report.read_text())
    return {
        "seconds": seconds,
        "requests": found["requests"],
        "planned": found["partitions_planned"],
    }


def benchmark(tmp: Path, wire: Wire) -> dict[str, Any]:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    year, month = tmp / "year", tmp / "month"
    print(f"writing sources: {DAYS} and {SMALL_DAYS} days from {START}, hourly", flush=True)
    write_sqlite(year, start=START, days=DAYS, interval_s=INTERVAL_S)
    write_sqlite(month, start=START, days=SMALL_DAYS, interval_s=INTERVAL_S)
    config = load(CONFIG, env={"ESS_DEMO_DIR": str(year)})
    small = load(CONFIG, env={"ESS_DEMO_DIR": str(month)})
    out: dict[str, Any] = {}

    print("publishing the year ...", flush=True)
    out["publish_year"] = timed(wire, config, "year", now=NOW)
    assert out["publish_year"]["partitions"] == 2 * 4 * DAYS, out["publish_year"]
    out["objects_year"] = len(keys_under(client, "year"))
    print("no-op runs ...", flush=True)
    noops = [timed(wire, config, "year", now=NOW) for _ in range(NOOP_REPEATS)]
    assert all(r["partitions"] == 0 for r in noops), noops
    out["noop"] = median_of(noops)
    out["noop_site1"] = timed(wire, config, "year", now=NOW, sites=["1"])
    out["noop_cli"] = cli_noop(year, "year", tmp)
    assert out["noop_cli"]["planned"] == 0, out["noop_cli"]
    out["publish_month"] = timed(wire, small, "month", now=NOW)
    out["noop_month"] = timed(wire, small, "month", now=NOW)

    print(f"adding {NEW_DAY} ...", flush=True)
    write_sqlite(year, start=START, days=DAYS + 1, interval_s=INTERVAL_S)
    adds, ones = [], []
    for i in range(ADD_REPEATS):
        copied = copy_prefix(client, "year", f"add{i}")
        adds.append(timed(wire, config, f"add{i}", now=LATER))
        ones.append(timed(wire, config, f"one{i}", now=LATER, since=NEW_DAY, until=NEW_DAY))
        assert adds[-1]["partitions"] == ones[-1]["partitions"] == 8, (adds[-1], ones[-1])
        print(
            f"  round {i + 1}/{ADD_REPEATS}: copied {copied} objects, add-day "
            f"{adds[-1]['seconds']:.2f} s, day alone {ones[-1]['seconds']:.2f} s",
            flush=True,
        )
    out["add_day"], out["day_alone"] = median_of(adds), median_of(ones)
    out["add_ratio"] = statistics.median(
        a["seconds"] / o["seconds"] for a, o in zip(adds, ones, strict=True)
    )
    return out


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    def check(name: str, value: str, ok: bool, goal: str) -> dict[str, Any]:
        return {"target": name, "value": value, "result": "PASS" if ok else "MISS", "goal": goal}

    inner, cli = r["noop"]["seconds"], r["noop_cli"]["seconds"]
    year, month = r["noop"]["wire"], r["noop_month"]["wire"]
    return [
        check("no-op wall, in-process", f"{inner:.2f} s", inner < 5, "< 5 s"),
        check("no-op wall, CLI process", f"{cli:.2f} s", cli < 5, "< 5 s"),
        check("no-op requests 365 vs 30 d", f"{year} vs {month}", year == month, "equal"),
        check("add day / day alone", f"{r['add_ratio']:.2f}", r["add_ratio"] <= 1.3, "<= 1.3"),
    ]


def report(r: dict[str, Any]) -> None:
    rows = [
        ("publish year (2 x 4 x 365 days)", r["publish_year"]),
        (f"no-op, in-process (median of {NOOP_REPEATS})", r["noop"]),
        ("no-op, --site 1 only", r["noop_site1"]),
        ("no-op, CLI process (real clock)", {**r["noop_cli"], "wire": "-"}),
        ("publish 30 days", r["publish_month"]),
        ("no-op, 30-day publish", r["noop_month"]),
        (f"add {NEW_DAY} (median of {ADD_REPEATS})", r["add_day"]),
        (f"{NEW_DAY} alone, fresh prefix", r["day_alone"]),
    ]
    print(f"\n{'run':<36} {'seconds':>8} {'report req':>10} {'wire req':>9}")
    for name, row in rows:
        print(f"{name:<36} {row['seconds']:>8.2f} {row['requests']:>10} {row['wire']:>9}")
    print(f"(the published year is {r['objects_year']} objects)\n")
    checks = targets(r)
    for c in checks:
        print(f"{c['result']:<4}  {c['target']:<28} {c['value']:>10}  (target {c['goal']})")
    for name in ("noop", "add_day"):
        print(f"\nrequests of {name}:")
        for kind, count in r[name]["by_kind"].items():
            print(f"  {count:>4}  {kind}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": {"start": str(START), "days": DAYS, "interval_s": INTERVAL_S, "now": str(NOW)},
        "runs": r,
        "targets": checks,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in a process of its own on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto's server did not start within 30 s")


@contextlib.contextmanager
def moto() -> Iterator[None]:
    """moto's server for the duration, with boto3 pointed at it through the environment."""
    server, endpoint = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield
    finally:
        server.kill()
        server.wait()


def main() -> None:
    with moto(), tempfile.TemporaryDirectory(prefix="publish-bench-") as tmp:
        report(benchmark(Path(tmp), Wire()))


if __name__ == "__main__":
    main()
