"""`ess-export api` beyond the golden replies: new publishes, health, OpenAPI, caching, CORS,
the bearer token, access logs, and the command itself under a real uvicorn."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx 0.28 works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from exporter.api import ApiSettings, create_app  # noqa: E402
from exporter.api.live import LiveDataset  # noqa: E402

PCS = "/api/ess/operating-sites/1/pcs/?page_size=2&fields=timestamp"
SECRET = "test-secret-for-hs256"


@pytest.fixture
def root(published: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "public"
    shutil.copytree(published, copy)
    return copy


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(target=str(root)))) as test_client:
        yield test_client


def _token(secret: str, **claims: object) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_catalog_is_picked_up_after_the_refresh_interval(root: Path) -> None:
    clock = Clock()
    live = LiveDataset(str(root), refresh_seconds=5, clock=clock)
    with live.lease() as before:
        catalog = root / "catalog.json"
        catalog.write_bytes(catalog.read_bytes() + b"\n")  # a publish rewrote it
        assert live.refresh() is False  # checked at most every 5 s
        clock.now += 5
        assert live.refresh() is True
        assert live.snapshot is not before and live.reopened == 1
        # A request that began before keeps its snapshot, still readable.
        assert before.dataset.query("1", "pcs", page_size=1).count > 0
        assert before.retired and before.leases == 1
    assert before.leases == 0
    clock.now += 5
    assert live.refresh() is False  # same bytes: no reopening
    live.close()


def test_healthz_reports_the_catalog_age(client: TestClient, root: Path) -> None:
    reply = client.get("/healthz")
    assert reply.status_code == 200
    health = reply.json()
    assert health["status"] == "ok"
    assert health["sites"] == ["1", "2"]
    assert health["catalog_age_seconds"] >= 0
    catalog = hashlib.sha256((root / "catalog.json").read_bytes()).hexdigest()
    assert health["catalog_sha256"] == catalog


def test_openapi_names_every_route_and_parameter(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert sorted(document["paths"]) == [
        "/api/ess/download/operating-sites/{operating_site_id}/{data_type}/",
        "/api/ess/operating-sites/{operating_site_id}/banks/{bank_id}/",
        "/api/ess/operating-sites/{operating_site_id}/banks/{bank_id}/racks/",
        "/api/ess/operating-sites/{operating_site_id}/banks/{bank_id}/racks/{rack_id}/",
        "/api/ess/operating-sites/{operating_site_id}/etc/",
        "/api/ess/operating-sites/{operating_site_id}/pcs/",
        "/healthz",
    ]
    rack = document["paths"]["/api/ess/operating-sites/{operating_site_id}/banks/{bank_id}/racks/"]
    names = [p["name"] for p in rack["get"]["parameters"]]
    assert names == [
        "operating_site_id",
        "bank_id",
        "fields",
        "omit",
        "date",
        "start-time",
        "end-time",
        "page",
        "page_size",
        "format",
    ]
    assert "rack_soc" in document["components"]["schemas"]["site1_rack"]["properties"]


def test_etag_answers_304_and_cors_allows_browsers(client: TestClient) -> None:
    first = client.get(PCS, headers={"Origin": "https://example.org"})
    assert first.status_code == 200
    assert first.headers["access-control-allow-origin"] == "*"
    assert first.headers["cache-control"] == "public, max-age=5"
    etag = first.headers["etag"]
    again = client.get(PCS, headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    other = client.get(PCS.replace("page_size=2", "page_size=3"), headers={"If-None-Match": etag})
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("authorization", "status", "detail"),
    [
        (None, 401, "Authentication credentials were not provided."),
        ("Bearer", 401, "Authorization header must contain two space-delimited values"),
        (
            f"Bearer {_token('another secret', token_type='access', exp=4e9, user_id=1)}",
            401,
            "Given token not valid for any token type",
        ),
        (
            f"Bearer {_token(SECRET, token_type='access', exp=1, user_id=1)}",
            401,
            "Given token not valid for any token type",
        ),
        (
            f"Bearer {_token(SECRET, token_type='refresh', exp=4e9, user_id=1)}",
            401,
            "Given token not valid for any token type",
        ),
        (
            f"Bearer {_token(SECRET, token_type='access', exp=4e9)}",
            401,
            "Token contained no recognizable user identification",
        ),
        (f"Bearer {_token(SECRET, token_type='access', exp=4e9, user_id=1)}", 200, None),
    ],
    ids=["missing", "no-token", "wrong-secret", "expired", "refresh-token", "no-user", "valid"],
)
def test_bearer_token_when_required(
    root: Path, authorization: str | None, status: int, detail: str | None
) -> None:
    app = create_app(ApiSettings(target=str(root), token_secret=SECRET))
    headers = {"Authorization": authorization} if authorization else {}
    with TestClient(app) as client:
        reply = client.get(PCS, headers=headers)
    assert reply.status_code == status
    if detail is not None:
        assert reply.json()["detail"] == detail
        assert reply.headers["www-authenticate"] == 'Bearer realm="api"'
    else:
        assert reply.json()["count"] > 0


def test_access_log_is_one_json_object_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="exporter.api.access"):
        client.get(PCS)
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert len(records) == 1
    record = records[0]
    assert (record["method"], record["path"], record["status"]) == (
        "GET",
        "/api/ess/operating-sites/1/pcs/",
        200,
    )
    assert record["query"] == "page_size=2&fields=timestamp"
    assert record["bytes"] > 0 and record["ms"] >= 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_serves_under_uvicorn(published: Path) -> None:
    port = _free_port()
    argv = [sys.executable, "-m", "exporter", "api", "--target", str(published)]
    proc = subprocess.Popen(
        [*argv, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        for _ in range(200):  # up to 20 s to listen
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}{PCS}"
        with urllib.request.urlopen(url, timeout=30) as reply:
            body = json.loads(reply.read())
            assert reply.headers["Content-Type"] == "application/json"
        assert len(body["results"]) == 2
        assert body["next"] == (
            f"http://127.0.0.1:{port}/api/ess/operating-sites/1/pcs/"
            "?fields=timestamp&page=2&page_size=2"
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b'"path":"/api/ess/operating-sites/1/pcs/"' in err  # the access log on stderr


def test_the_command_names_a_target_that_is_not_a_publish(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "exporter", "api", "--target", str(tmp_path)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"Error: {tmp_path}/catalog.json not found: {tmp_path} is not a published ess-export "
        "root; give the folder (or s3:// or https:// base) that holds catalog.json"
    ]


WINDOW = "start-time=2022-09-01T10:00:00&end-time=2022-09-01T12:00:00"


@pytest.mark.parametrize(
    ("target", "cache_control"),
    [
        (f"/api/ess/operating-sites/1/pcs/?{WINDOW}", "public, max-age=31536000, immutable"),
        (
            f"/api/ess/download/operating-sites/1/pcs/?{WINDOW}",
            "public, max-age=31536000, immutable",
        ),
        ("/api/ess/operating-sites/1/pcs/?date=2022-09-02", "public, max-age=31536000, immutable"),
        ("/api/ess/operating-sites/1/pcs/?start-time=2022-09-01T10:00:00", "public, max-age=5"),
        ("/api/ess/operating-sites/1/pcs/?date=2022-09-03", "public, max-age=5"),
    ],
    ids=["window-in-a-complete-day", "download", "date", "open-end", "day-not-published"],
)
def test_replies_of_complete_days_are_immutable(
    client: TestClient, target: str, cache_control: str
) -> None:
    reply = client.get(target)
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == cache_control
    etag = reply.headers["etag"]
    again = client.get(target, headers={"If-None-Match": f'"other", W/{etag}'})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)


def test_the_etag_follows_the_manifest_entries_a_reply_reads(root: Path) -> None:
    day1 = f"/api/ess/operating-sites/1/pcs/?{WINDOW}"
    day2 = "/api/ess/operating-sites/1/pcs/?date=2022-09-02"
    live = LiveDataset(str(root), refresh_seconds=0)
    with TestClient(create_app(ApiSettings(target=str(root)), live=live)) as client:
        before = {t: client.get(t).headers["etag"] for t in (day1, day2)}
        manifest = root / "sites" / "1" / "manifest.json"
        document = json.loads(manifest.read_text())
        pcs = document["tables"]["pcs"]["partitions"]
        day = next(p for p in pcs if p["date"] == "2022-09-02")
        day["files"]["parquet"]["sha256"] = "0" * 64  # as if the day had been republished
        manifest.write_text(json.dumps(document))
        catalog = root / "catalog.json"
        catalog.write_bytes(catalog.read_bytes() + b"\n")  # a publish rewrites the catalog
        live.refresh(force=True)
        after = {t: client.get(t).headers["etag"] for t in (day1, day2)}
    assert after[day1] == before[day1]
    assert after[day2] != before[day2]


def test_format_api_shows_the_json_reply_in_a_page(client: TestClient) -> None:
    from html.parser import HTMLParser

    class Pre(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside, self.text = False, ""

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.inside = self.inside or tag == "pre"

        def handle_endtag(self, tag: str) -> None:
            self.inside = self.inside and tag != "pre"

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.text += data

    for target, status in ((PCS, 200), ("/api/ess/operating-sites/1/pcs/?date=x", 400)):
        plain = client.get(target + "&format=json")
        page = client.get(target + "&format=api")
        assert (page.status_code, plain.status_code) == (status, status)
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        parser = Pre()
        parser.feed(page.text)
        head, _, body = parser.text.partition("\n\n")
        assert head.splitlines()[0] == f"HTTP {status} {'OK' if status == 200 else 'Bad Request'}"
        assert json.loads(body.replace("format=api", "format=json")) == plain.json()
