"""`ess-export serve` answers HTTP Range requests, so the "from the web" readers work on it."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from exporter.serve import make_server

PARQUET = "data/parquet/site=1/table=rack/date=2022-09-01/1_rack_2022-09-01.parquet"


@pytest.fixture(scope="module")
def served(published: Path) -> Iterator[str]:
    server = make_server(published, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(url: str, byte_range: str | None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Range": byte_range} if byte_range else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize(
    ("byte_range", "status", "span"),
    [
        pytest.param(None, 200, (0, None), id="no-range"),
        pytest.param("bytes=0-3", 206, (0, 4), id="first-bytes"),
        pytest.param("bytes=-8", 206, (-8, None), id="suffix"),
        pytest.param("bytes=4-", 206, (4, None), id="open-ended"),
        pytest.param("bytes=10-999999999", 206, (10, None), id="clamped"),
        pytest.param("bytes=0-1,4-5", 200, (0, None), id="several-ranges-ignored"),
    ],
)
def test_byte_ranges_of_a_published_file(
    served: str, published: Path, byte_range: str | None, status: int, span: tuple
) -> None:
    data = (published / PARQUET).read_bytes()
    code, headers, body = fetch(f"{served}/{PARQUET}", byte_range)
    expected = data[slice(*span)]
    assert (code, body) == (status, expected)
    assert headers["Accept-Ranges"] == "bytes"
    if status == 206:
        start = span[0] % len(data)
        assert headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
        assert headers["Content-Length"] == str(len(expected))


def test_a_range_past_the_end_is_416_with_the_size(served: str, published: Path) -> None:
    size = (published / PARQUET).stat().st_size
    code, headers, body = fetch(f"{served}/{PARQUET}", f"bytes={size}-")
    assert (code, headers["Content-Range"], body) == (416, f"bytes */{size}", b"")


def test_polars_reads_the_parquet_straight_from_the_preview_server(
    served: str, published: Path
) -> None:
    local = pl.read_parquet(published / PARQUET)
    remote = pl.scan_parquet(f"{served}/{PARQUET}").select("timestamp", "rack_soc").collect()
    assert remote.equals(local.select("timestamp", "rack_soc"))
    assert remote.height == local.height > 0
