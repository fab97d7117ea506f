"""What a re-export costs with the publish journal, against the code before it, side by side.

Publishes 30 days of the demo sources (2 sites x 4 tables, every 10 minutes) to moto's S3
server, regenerates the sources with another seed (every day's content changes), then
times `run(..., rebuild=True)` over a server-side copy of that publish, alternately with
this tree's code and with a baseline revision's (a git worktree, default: the commit
before the journal), each run in a process of its own. Reports medians, their ratio and
the requests by kind. Writes bench/results/reexport.json, exits 0.

Run: .venv/bin/python bench/reexport_bench.py [--baseline REV] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from publish_bench import BUCKET, copy_prefix, moto  # noqa: E402

from exporter.demo import write_sqlite  # noqa: E402

BASELINE = "b45b501"  # main before the publish journal
DAYS, INTERVAL_S = 30, 600
RESULTS = ROOT / "bench" / "results" / "reexport.json"

# Runs in the child, with the tree under test first on sys.path.
CHILD = """
import json, sys, time
from collections import Counter
from datetime import UTC, datetime
sys.path.insert(0, sys.argv[1])
from exporter.config import load
from exporter.pipeline import run
try:  # the one home of the S3 client factory, in either tree
    import exporter.storage.s3 as home
except ImportError:  # a baseline from before storage/ was a package
    import exporter.storage as home
sent = []
make = home.make_s3_client
def counted(options):
    client = make(options)
    client.meta.events.register(
        "before-send.s3.*", lambda request, **_: sent.append(request.method))
    return client
home.make_s3_client = counted
config = load(sys.argv[2], env={"ESS_DEMO_DIR": sys.argv[3]})
started = time.perf_counter()
report = run(config, target=sys.argv[4], rebuild=sys.argv[5] == "rebuild",
             now=datetime(2023, 6, 1, tzinfo=UTC))
print(json.dumps({"seconds": time.perf_counter() - started, "partitions": report.partitions,
                  "requests": len(sent), "by_method": dict(Counter(sent))}))
"""


def child(tree: Path, sources: Path, prefix: str, mode: str) -> dict[str, Any]:
    command = [sys.executable, "-c", CHILD, str(tree), str(ROOT / "config" / "demo.toml")]
    command += [str(sources), f"s3://{BUCKET}/{prefix}", mode]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with moto(), tempfile.TemporaryDirectory(prefix="reexport-bench-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(base), args.baseline],
            cwd=ROOT,
            check=True,
        )
        try:
            measure(Path(tmp), base, args)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)


def measure(tmp: Path, base: Path, args: argparse.Namespace) -> None:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    first, second = tmp / "seed0", tmp / "seed1"
    write_sqlite(first, days=DAYS, interval_s=INTERVAL_S, seed=0)
    write_sqlite(second, days=DAYS, interval_s=INTERVAL_S, seed=1)
    print(f"publishing {DAYS} days (2 sites x 4 tables) ...", flush=True)
    published = child(ROOT, first, "published", "plain")
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "journal": []}
    for i in range(args.rounds):
        for name, tree in (("baseline", base), ("journal", ROOT)):
            prefix = f"{name}{i}"
            copy_prefix(client, "published", prefix)
            runs[name].append(child(tree, second, prefix, "rebuild"))
            assert runs[name][-1]["partitions"] == published["partitions"], runs[name][-1]
        print(
            f"  round {i + 1}/{args.rounds}: baseline {runs['baseline'][-1]['seconds']:.2f} s, "
            f"journal {runs['journal'][-1]['seconds']:.2f} s",
            flush=True,
        )
    ratio = statistics.median(
        j["seconds"] / b["seconds"] for j, b in zip(runs["journal"], runs["baseline"], strict=True)
    )
    print(f"\nre-export of {published['partitions']} partitions with changed data ({DAYS} days)")
    print(f"{'code':<10} {'median s':>9} {'requests':>9}  by method")
    for name, rows in runs.items():
        median = statistics.median(r["seconds"] for r in rows)
        print(f"{name:<10} {median:>9.2f} {rows[-1]['requests']:>9}  {rows[-1]['by_method']}")
    print(f"journal / baseline (median of per-round ratios): {ratio:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {"baseline": args.baseline, "days": DAYS, "runs": runs, "ratio": ratio}
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
