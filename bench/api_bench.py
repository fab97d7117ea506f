"""`ess-export api` against the seed service it replaces, side by side on the same data.

Loads the golden source (tests/golden/source.json; tests/support/golden_source.py) into a
throwaway PostgreSQL, publishes it, then starts both services on loopback: the reference
(../shared/seed_api under gunicorn, 2 workers, as tests/golden/record.py starts it) and
`ess-export api --workers 2`. For each it measures

    page   8 concurrent clients for --seconds, each sending the seed's example request
           (rack 1, 2-hour window, fields=timestamp,rack_soc, page 1 of 1000 rows) over and
           over: requests/s and p50/p99 latency. `ess-export api` answers all but the first
           from its reply cache: this is the cache-hit figure.
    miss   the same, but every request a window not asked before (the start moved on by a
           second each time, 3600 of them): each reply is read from the files, the honest
           figure for questions the cache has not seen.
    day    one download of a full day of site 1 rack (72 MB of CSV): MB/s

Every reply is checked (status 200, the same bytes from both services; in the miss phase
against the reference's reply to the same URL, fetched for every URL either side asked) so
a fast error cannot pass for a fast answer. Targets: page ≥ 5× the reference's requests/s
with p99 below its p50; day ≥ 3× its MB/s.

    .venv/bin/python bench/api_bench.py [--seconds 15] [--clients 8] [--out results.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.golden import record  # noqa: E402
from tests.support.golden_source import load_source, publish  # noqa: E402
from tests.support.pgcluster import PgCluster  # noqa: E402

HOST = "127.0.0.1:8771"  # the Host the golden replies were recorded with
PAGE = (
    "/api/ess/operating-sites/1/banks/1/racks/1/?fields=timestamp,rack_soc"
    "&start-time=2022-09-01T10:00:00&end-time=2022-09-01T12:00:00&page=1"
)
DAY = (
    "/api/ess/download/operating-sites/1/rack/"
    "?start-time=2022-09-01T00:00:00&end-time=2022-09-01T23:59:59"
)


def get(port: int, target: str, conn: http.client.HTTPConnection | None = None) -> bytes:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("GET", target, headers={"Host": HOST})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{target}: {resp.status} {body[:200]!r}")
        return body
    finally:
        if own:
            conn.close()


def miss_target(i: int) -> str:
    start = f"2022-09-01T10:{i // 60 % 60:02d}:{i % 60:02d}"
    return PAGE.replace("start-time=2022-09-01T10:00:00", f"start-time={start}")


def load(
    port: int, clients: int, seconds: float, targets: list[str], seen: dict[str, bytes]
) -> dict[str, float]:
    """`clients` threads sending `targets` in turn for `seconds` (after a 2 s warm-up of the
    same kind): rate and latency. Replies are kept in `seen` (the first one of a URL) or
    checked against it."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 2.0
    stop = start + seconds
    counter = iter(range(10**9))
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while (now := time.monotonic()) < stop:
            with lock:
                target = targets[next(counter) % len(targets)]
            t0 = time.perf_counter()
            body = get(port, target, conn)
            elapsed = time.perf_counter() - t0
            with lock:
                known = seen.setdefault(target, body)
            if body != known:
                errors.append(target)
                break
            if now >= start:
                mine.append(elapsed)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    if errors:
        raise RuntimeError(f"a reply differs from the reference's: {errors[0]}")
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }


def check_against(port: int, replies: dict[str, bytes]) -> int:
    """Every reply of the other side's run, asked of this side: they must be equal."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for target, body in replies.items():
        if get(port, target, conn) != body:
            raise RuntimeError(f"{target}: the services' replies differ")
    conn.close()
    return len(replies)


def download(port: int) -> tuple[dict[str, float], bytes]:
    t0 = time.perf_counter()
    body = get(port, DAY)
    elapsed = time.perf_counter() - t0
    return {
        "bytes": len(body),
        "seconds": round(elapsed, 2),
        "mb_per_s": round(len(body) / elapsed / 1e6, 1),
    }, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ours(root: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "exporter", "api", "--target", str(root)]
    argv += ["--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("ess-export api did not listen within 60 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--venv", default=os.environ.get("ESS_GOLDEN_VENV", "/tmp/ess-golden/venv"))
    parser.add_argument("--out", help="Write the results here as JSON.")
    args = parser.parse_args()
    results: dict[str, object] = {"clients": args.clients, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as scratch, PgCluster.start() as pg:
        print("loading and publishing the golden source ...", flush=True)
        load_source(pg, suffix="")  # the reference reads databases ess1 and ess2
        root = Path(scratch) / "public"
        publish(pg, root, suffix="")
        seed = record.reference_copy(Path(scratch))
        record.ensure_venv(Path(args.venv), seed)
        ref_port, our_port = free_port(), free_port()
        reference = record.start_service(Path(args.venv), seed, pg, ref_port)
        ours = start_ours(root, our_port, args.workers)
        try:
            expected = get(ref_port, PAGE)
            if get(our_port, PAGE) != expected:
                raise RuntimeError("the example page differs between the services")
            misses = [miss_target(i) for i in range(3600)]
            seen: dict[str, dict[str, bytes]] = {}
            for name, port in (("reference", ref_port), ("ess-export api", our_port)):
                print(f"{name}: {args.clients} clients, page 1 of the example ...", flush=True)
                page = load(port, args.clients, args.seconds, [PAGE], {PAGE: expected})
                print(f"  cache hit (one URL): {page}", flush=True)
                seen[name] = {}
                miss = load(port, args.clients, args.seconds, misses, seen[name])
                print(f"  cache miss (a new window each time): {miss}", flush=True)
                day, body = download(port)
                print(f"  full-day rack download: {day}", flush=True)
                results[name] = {"page": page, "miss": miss, "day": day, "day_bytes": len(body)}
            theirs, mine = seen["reference"], seen["ess-export api"]
            checked = check_against(ref_port, {t: b for t, b in mine.items() if t not in theirs})
            both = [t for t in mine if t in theirs]
            if any(mine[t] != theirs[t] for t in both):
                raise RuntimeError("a miss-phase reply differs between the services")
            checked += len(both)
            print(f"miss phase: {checked} replies compared between the services", flush=True)
        finally:
            ours.terminate()
            ours.wait(timeout=30)
            record.stop_service(reference)
    ref, new = results["reference"], results["ess-export api"]
    assert isinstance(ref, dict) and isinstance(new, dict)
    results["ratio"] = {
        "requests_per_s": round(new["page"]["requests_per_s"] / ref["page"]["requests_per_s"], 1),
        "p99_vs_reference_p50": round(new["page"]["p99_ms"] / ref["page"]["p50_ms"], 3),
        "miss_requests_per_s": round(
            new["miss"]["requests_per_s"] / ref["miss"]["requests_per_s"], 1
        ),
        "miss_p99_vs_reference_p50": round(new["miss"]["p99_ms"] / ref["miss"]["p50_ms"], 3),
        "download_mb_per_s": round(new["day"]["mb_per_s"] / ref["day"]["mb_per_s"], 1),
    }
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
