"""A bounded load test of `ess-export api` (loopback only) while the target is republished.

32 clients ask for list pages and CSV downloads for 60 s while `ess-export run --rebuild`
republishes the same directory, again and again, alternating between two versions of the
source (the demo sources with seed 0, then seed 1: every value differs). Every reply must
be a 2xx and equal, byte for byte, the reply the API gives over a quiet publish of one of
the two versions; both versions must be seen, so the publishes did change the replies.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx 0.28 works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from exporter.api import ApiSettings, create_app  # noqa: E402
from exporter.config import load  # noqa: E402
from exporter.demo import write_sqlite  # noqa: E402
from exporter.pipeline import run  # noqa: E402
from tests.support.api_server import ApiServer, get  # noqa: E402

CLIENTS = 32
SECONDS = 60.0
LATER = dt.datetime(2022, 9, 20, tzinfo=dt.UTC)  # every demo day complete
REPO = Path(__file__).resolve().parents[1]
SITE1 = "/api/ess/operating-sites/1"
TARGETS = [
    f"{SITE1}/banks/1/racks/1/?fields=timestamp,rack_soc"
    "&start-time=2022-09-02T10:00:00&end-time=2022-09-02T12:00:00",
    f"{SITE1}/banks/1/racks/2/?start-time=2022-09-01T22:00:00&end-time=2022-09-02T02:00:00"
    "&page=2&page_size=50",
    f"{SITE1}/banks/1/racks/?date=2022-09-03&page=last",
    f"{SITE1}/banks/1/?date=2022-09-01&page_size=200",
    f"{SITE1}/pcs/?date=2022-09-02&page=3&page_size=100",
    "/api/ess/operating-sites/2/etc/?date=2022-09-01&page_size=100",
    "/api/ess/operating-sites/2/banks/1/racks/?start-time=2022-09-03T05:00:00"
    "&end-time=2022-09-03T06:00:00",
]
MULTI_DAY = (
    "/api/ess/download/operating-sites/2/bank/"
    "?start-time=2022-09-01T12:00:00&end-time=2022-09-03T11:59:59"
)
DOWNLOADS = [
    "/api/ess/download/operating-sites/1/rack/"
    "?start-time=2022-09-02T00:00:00&end-time=2022-09-02T23:59:59",
    MULTI_DAY,
]

pytestmark = pytest.mark.load


def _sources(base: Path, seed: int) -> Path:
    src = base / f"src-{seed}"
    write_sqlite(src, start=dt.date(2022, 9, 1), days=3, interval_s=120, seed=seed)
    return src


def _publish(src: Path, out: Path) -> None:
    config = load(REPO / "config" / "demo.toml", env={"ESS_DEMO_DIR": str(src)})
    run(config, target=str(out), now=LATER)


def _answers(root: Path, port: int) -> dict[str, bytes]:
    """Every target's reply over a quiet publish, as a client of `port` gets it."""
    app = create_app(ApiSettings(target=str(root)), access_log=False)
    answers = {}
    with TestClient(app, base_url=f"http://127.0.0.1:{port}") as client:
        for target in TARGETS + DOWNLOADS:
            reply = client.get(target)
            assert reply.status_code == 200, (target, reply.text[:200])
            answers[target] = reply.content
    return answers


def _republish(root: Path, sources: list[Path], stop: threading.Event) -> list[int]:
    """`ess-export run --rebuild` into `root`, alternating the sources, until `stop`."""
    codes = []
    while not stop.is_set():
        src = sources[len(codes) % len(sources)]
        env = {**os.environ, "ESS_DEMO_DIR": str(src)}
        argv = [sys.executable, "-m", "exporter", "run", "--rebuild", "--target", str(root)]
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=300)
        codes.append(done.returncode)
    return codes


def test_replies_stay_true_while_the_target_is_republished(tmp_path: Path) -> None:
    old_src, new_src = _sources(tmp_path, 0), _sources(tmp_path, 1)
    root, old_root, new_root = tmp_path / "public", tmp_path / "old", tmp_path / "new"
    _publish(old_src, old_root)
    _publish(new_src, new_root)
    shutil.copytree(old_root, root)
    with ApiServer(str(root), "--workers", "2", "--refresh", "1") as server:
        versions = [_answers(old_root, server.port), _answers(new_root, server.port)]
        same = [t for t in TARGETS + DOWNLOADS if versions[0][t] == versions[1][t]]
        assert same == []  # each reply tells the versions apart
        seen: Counter[str] = Counter()
        failures: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def client(number: int) -> None:
            pick = random.Random(number)
            while not stop.is_set() and not failures:
                target = pick.choice(TARGETS * 4 + DOWNLOADS)  # about 1 in 15 a download
                try:
                    status, body = get(server.port, target)
                except http.client.IncompleteRead:
                    # A download of several days that a publish changed while it streamed
                    # is ended without its last chunk: the client knows it is not whole.
                    with lock:
                        seen["cut"] += 1
                    if target != MULTI_DAY:
                        failures.append(f"{target}: cut")
                    continue
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(f"{target}: {exc!r}")
                    return
                if status != 200:
                    failures.append(f"{target}: status {status}: {body[:200]!r}")
                elif body not in (versions[0][target], versions[1][target]):
                    failures.append(f"{target}: a reply equal to neither publish")
                with lock:
                    seen["old" if body == versions[0][target] else "new"] += 1

        codes: list[int] = []
        publisher = threading.Thread(
            target=lambda: codes.extend(_republish(root, [new_src, old_src], stop))
        )
        clients = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        publisher.start()
        for thread in clients:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        for thread in clients:
            thread.join(timeout=300)
        publisher.join(timeout=300)
        log = server.stderr
    problems = [line for line in log.splitlines() if not line.startswith("{")]
    assert failures == [], (failures, problems[-60:])
    assert codes and set(codes) == {0}, codes
    assert seen["old"] > 0 and seen["new"] > 0, seen  # the publishes changed the replies
    assert '"status":5' not in log and "Traceback" not in log
    cuts = [line for line in problems if line.startswith(f"download of {MULTI_DAY[:40]}")]
    assert len(cuts) >= seen["cut"], (seen, problems[-20:])
