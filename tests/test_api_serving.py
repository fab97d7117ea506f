"""`ess-export api` as a real uvicorn process: a client hanging up mid-download, remote
targets (moto's S3 server, `ess-export serve` over HTTP), and two worker processes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx 0.28 works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from exporter.api import ApiSettings, create_app  # noqa: E402
from exporter.config import load  # noqa: E402
from exporter.demo import write_sqlite  # noqa: E402
from exporter.pipeline import run  # noqa: E402
from tests.conftest import SeedSites  # noqa: E402
from tests.support.api_server import ApiServer, free_port, get  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAGE = "/api/ess/operating-sites/1/banks/1/racks/1/?start-time=2022-09-01T10:00:00&page_size=50"
DAY = (
    "/api/ess/download/operating-sites/1/rack/"
    "?start-time=2022-09-01T00:00:00&end-time=2022-09-01T23:59:59"
)
TARGETS = [PAGE, DAY, "/api/ess/operating-sites/2/banks/1/?date=2022-09-02&page=last"]


def _health(server: ApiServer) -> dict[str, object]:
    status, body = get(server.port, "/healthz")
    assert status == 200
    return dict(json.loads(body))


def _replies(root: Path, port: int) -> dict[str, bytes]:
    """The replies over a local directory, as a client of `port` gets them."""
    app = create_app(ApiSettings(target=str(root)), access_log=False)
    with TestClient(app, base_url=f"http://127.0.0.1:{port}") as client:
        return {target: client.get(target).content for target in TARGETS}


def _log_lines(text: str) -> list[str]:
    """Every line of the server's stderr that is not an access-log record (info)."""
    others = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            others.append(line)
            continue
        if not isinstance(record, dict) or "status" not in record:
            others.append(line)
    return others


@pytest.fixture(scope="module")
def big_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo day at 5-second rows: site 1 rack is about 14 MB of CSV, more than the
    server holds for a client that stops reading (socket buffers and four chunks)."""
    base = tmp_path_factory.mktemp("big-day")
    write_sqlite(base / "src", start=dt.date(2022, 9, 1), days=1, interval_s=5)
    config = load(REPO / "config" / "demo.toml", env={"ESS_DEMO_DIR": str(base / "src")})
    run(config, target=str(base / "public"), now=dt.datetime(2022, 9, 20, tzinfo=dt.UTC))
    return base / "public"


def _stalled_download(port: int) -> socket.socket:
    """A download whose client reads its first bytes, then nothing more."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server soon has to wait
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {DAY} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def test_a_client_hanging_up_mid_download_costs_nothing(big_day: Path) -> None:
    with ApiServer(str(big_day)) as server:
        sockets = [_stalled_download(server.port) for _ in range(3)]
        assert _health(server)["downloads_streaming"] == 3
        # Others are answered while three downloads wait on their clients.
        assert get(server.port, PAGE)[0] == 200
        status, body = get(server.port, DAY)
        assert status == 200 and body.count(b"\r\n") > 130_000
        for n, sock in enumerate(sockets):
            if n % 2:  # a reset, or an orderly close
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        for _ in range(150):  # each reading thread sees the hang-up within a few seconds
            if _health(server)["downloads_streaming"] == 0:
                break
            time.sleep(0.2)
        assert _health(server)["downloads_streaming"] == 0
        assert get(server.port, DAY) == (status, body)  # and the next one is whole
        server.stop()
        assert _log_lines(server.stderr) == []


def test_an_s3_target_answers_like_the_directory(
    seed_sites: SeedSites, published: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    run(seed_sites.config(), target=f"s3://{bucket}/pub")
    with ApiServer(f"s3://{bucket}/pub", "--cache-dir", str(tmp_path), env=s3_env) as server:
        expected = _replies(published, server.port)
        for target in TARGETS:
            assert get(server.port, target) == (200, expected[target]), target


def test_an_http_target_answers_like_the_directory(published: Path, tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "exporter", "serve", "--target", str(published)]
    static = subprocess.Popen(
        [*argv, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/"
        with ApiServer(url, "--cache-dir", str(tmp_path)) as server:
            expected = _replies(published, server.port)
            for target in TARGETS:
                assert get(server.port, target) == (200, expected[target]), target
    finally:
        static.terminate()
        static.wait(timeout=30)


def _pids_with(server: ApiServer, want: str | None, tries: int = 400) -> dict[int, str]:
    """Each worker's catalog digest, asked on new connections until two processes have
    answered (with `want`, when given)."""
    seen: dict[int, str] = {}
    for _ in range(tries):
        health = _health(server)
        seen[int(str(health["process"]))] = str(health["catalog_sha256"])
        done = [pid for pid, sha in seen.items() if want is None or sha == want]
        if len(done) >= 2:
            return seen
        time.sleep(0.05)
    return seen


def test_two_workers_answer_and_both_pick_up_a_new_publish(
    seed_sites: SeedSites, tmp_path: Path
) -> None:
    root = tmp_path / "public"
    run(seed_sites.config(), target=str(root), until=dt.date(2022, 9, 1))  # the first day
    with ApiServer(str(root), "--workers", "2", "--refresh", "0.2") as server:
        before = _pids_with(server, None)
        assert len(before) == 2, before  # two processes answered
        assert len(set(before.values())) == 1
        replies = {get(server.port, PAGE) for _ in range(6)}
        assert len(replies) == 1
        status, body = replies.pop()
        assert status == 200
        run(seed_sites.config(), target=str(root))  # the second day is published
        want = hashlib.sha256((root / "catalog.json").read_bytes()).hexdigest()
        assert want not in before.values()
        after = _pids_with(server, want)
        assert sorted(after.values()).count(want) >= 2, after
        # Both answer from the new publish: the open-ended window now reaches day two.
        count = json.loads(body)["count"]
        later = {get(server.port, PAGE) for _ in range(6)}
        assert len(later) == 1
        status, body = later.pop()
        assert status == 200 and json.loads(body)["count"] > count
