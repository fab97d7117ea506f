"""The recorded replies of the seed service (tests/golden/) are complete and well-formed.

Nothing here runs the seed service: `make golden` records, these tests read the files.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tests.golden.record import HOST
from tests.golden.requests import PARAMS, REQUESTS, ROUTES

GOLDEN = Path(__file__).parent / "golden"
REPLIES = sorted((GOLDEN / "replies").glob("*.json"))
PAGE_KEYS = ["count", "next", "previous", "results"]


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def body(reply: dict) -> bytes:
    resp = reply["response"]
    if resp["body_encoding"] == "text":
        return resp["body"].encode("utf-8")
    if resp["body_encoding"] == "base64":
        return base64.b64decode(resp["body"])
    raise AssertionError(f"{reply['name']}: a digest has no body")


@pytest.fixture(scope="module")
def replies() -> dict[str, dict]:
    return {path.stem: read(path) for path in REPLIES}


def test_one_reply_per_request(replies: dict[str, dict]) -> None:
    assert len(replies) >= 60
    assert sorted(replies) == sorted(r.name for r in REQUESTS)
    for request in REQUESTS:
        reply = replies[request.name]
        assert reply["name"] == request.name
        assert reply["request"] == {
            "method": request.method,
            "target": request.target,
            "headers": {"Host": HOST},
        }
        assert reply["covers"] == list(request.covers)


@pytest.mark.parametrize("path", REPLIES, ids=lambda p: p.stem)
def test_reply_parses(path: Path) -> None:
    reply = read(path)
    resp = reply["response"]
    assert isinstance(reply["stable"], bool)
    assert resp["status"] in (200, 301, 400, 404, 405)
    assert re.fullmatch(r"[0-9a-f]{64}", resp["body_sha256"])
    if resp["body_encoding"] == "digest":
        # Too large to keep: its size, digest, line count and first and last lines.
        assert resp["body_bytes"] > 256 * 1024 and resp["body_lines"] > 0
        assert resp["body_head"] and resp["body_tail"]
        assert resp["content_type"] == "text/csv"
        return
    data = body(reply)
    assert len(data) == resp["body_bytes"]
    assert hashlib.sha256(data).hexdigest() == resp["body_sha256"]
    if reply["request"]["method"] == "HEAD" or resp["status"] == 301:
        assert data == b""
        if resp["status"] == 301:
            assert resp["location"].startswith("/api/ess/")
            assert resp["location"].split("?")[0].endswith("/")
        return
    kind = resp["content_type"].split(";")[0]
    if kind == "application/json":
        value = json.loads(data)
        if resp["status"] == 200:
            assert list(value) == PAGE_KEYS
            assert isinstance(value["count"], int) and isinstance(value["results"], list)
            for link in (value["next"], value["previous"]):
                assert link is None or link.startswith(f"http://{HOST}/api/ess/")
        else:
            assert isinstance(value, dict) and value
    elif kind == "text/csv":
        assert resp["status"] == 200
        assert resp["content_disposition"].startswith("attachment; filename=")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        assert rows[0][0] == "timestamp" and len(rows) >= 2
        assert {len(row) for row in rows} == {len(rows[0])}
    else:
        assert kind == "text/html" and resp["status"] == 404


def test_every_route_parameter_and_case_is_covered(replies: dict[str, dict]) -> None:
    ok_by_route: dict[str, set[str]] = defaultdict(set)
    tags: set[str] = set()
    for reply in replies.values():
        tags |= set(reply["covers"])
        route = next((t[6:] for t in reply["covers"] if t.startswith("route:")), None)
        site = next((t[5:] for t in reply["covers"] if t.startswith("site:")), None)
        if route and site and reply["response"]["status"] == 200:
            ok_by_route[route].add(site)
    # Every route answered data for both sites.
    assert {route: sorted(ok_by_route[route]) for route in ROUTES} == {
        route: ["1", "2"] for route in ROUTES
    }
    assert {f"param:{p}" for p in PARAMS} <= tags
    assert {"data:duplicate", "data:null", "data:fault-list", "redirect", "edge"} <= tags
    statuses = {r["response"]["status"] for r in replies.values()}
    assert statuses == {200, 301, 400, 404, 405}
    targets = [r["request"]["target"] for r in replies.values()]
    assert any("page=last" in t for t in targets)
    assert any("page_size=20000" in t for t in targets)
    redirected = {r["covers"][0] for r in replies.values() if r["response"]["status"] == 301}
    assert {"route:rack-detail", "route:rack-list", "route:pcs-list", "route:download"} <= (
        redirected
    )
    # An empty download is an error, an empty list is not.
    no_data = replies["download_no_data"]["response"]
    assert (no_data["status"], no_data["content_type"]) == (404, "application/json")
    assert json.loads(replies["rack_detail_unknown_rack"]["response"]["body"])["count"] == 0


def test_source_describes_both_sites() -> None:
    source = read(GOLDEN / "source.json")
    assert source["load_args"][:2] == ["--days", "2"]
    assert sorted(source["tables"]) == ["ess1", "ess2"]
    for db, tables in source["tables"].items():
        assert sorted(tables) == ["bank", "etc", "pcs", "rack"], db
        for table, info in tables.items():
            assert info["rows"] > 0 and re.fullmatch(r"[0-9a-f]{32}", info["copy_md5"])
            assert info["columns"][0] == ["TIMESTAMP", "timestamp without time zone"], table
