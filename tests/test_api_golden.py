"""Replay every recorded reply of the seed service (tests/golden/replies) against `ess-export api`.

The golden source (tests/golden/source.json) is loaded into a throwaway PostgreSQL (from a
digest-checked cache after the first time, see tests/support/golden_source.py), published
with tests/golden/ess-export.toml, and each recorded request is sent with its own method,
target and Host header. Status, content type, Content-Disposition and Location must be the
same, and the body byte for byte (JSON is compared as text, so key order and number text
count; the full-day download, recorded as a digest, by its sha256, size and line count).

Rows with equal timestamps: the seed service returned them in the table's physical order
(racks 8 to 1 within a second, as the seed's figure 7 shows). The API orders them by the
keys descending, which gives that order, so no reply needs a looser comparison.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx 0.28 works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from exporter.api import ApiSettings, create_app  # noqa: E402
from tests.support.golden_source import load_source, publish  # noqa: E402
from tests.support.pgcluster import PgCluster  # noqa: E402

REPLIES = Path(__file__).parent / "golden" / "replies"
CASES = sorted(REPLIES.glob("*.json"))


@pytest.fixture(scope="session")
def golden_root(pg: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    load_source(pg)
    root = tmp_path_factory.mktemp("golden") / "public"
    publish(pg, root)
    return root


@pytest.fixture(scope="module")
def client(golden_root: Path) -> Iterator[TestClient]:
    app = create_app(ApiSettings(target=str(golden_root)), access_log=False)
    with TestClient(app, base_url="http://127.0.0.1:8771") as test_client:
        yield test_client


def test_every_reply_is_replayed() -> None:
    assert len(CASES) == 102


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_reply(client: TestClient, path: Path) -> None:
    recorded = json.loads(path.read_text())
    request, want = recorded["request"], recorded["response"]
    got = client.request(
        request["method"], request["target"], headers=request["headers"], follow_redirects=False
    )
    assert got.status_code == want["status"]
    assert got.headers.get("content-type") == want["content_type"]
    assert got.headers.get("content-disposition") == want["content_disposition"]
    assert got.headers.get("location") == want["location"]
    if want["body_encoding"] == "text":
        assert got.content.decode() == want["body"]
    else:
        body = got.content
        assert (len(body), body.count(b"\n")) == (want["body_bytes"], want["body_lines"])
        assert body.decode().split("\n")[:3] == want["body_head"]
        assert hashlib.sha256(body).hexdigest() == want["body_sha256"]
