"""Range help without the explorer: the month URL lists and the range snippets of the table
and month pages, run as a reader would (DuckDB, polars, `ess-export query`, curl and wget
against `ess-export serve`) and compared with the published day files."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import published_manifest
from tests.test_site import parse
from tests.test_site_browser import serve

BIN = Path(sys.executable).parent
HIVE = ["date", "site", "table"]  # the columns hive_partitioning adds from the folder names


@pytest.fixture(scope="module")
def tree(demo_published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ranges") / "public"
    shutil.copytree(demo_published, root)
    return root


@pytest.fixture(scope="module")
def server(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tree, tmp_path_factory)


def snippets(tree: Path, key: str) -> dict[str, str]:
    root = parse((tree / key).read_bytes())
    return {e.get("data-snippet"): "".join(e.itertext()) for e in root.iter("pre")}


def list_links(tree: Path, key: str) -> set[str]:
    """The URL lists a page links to, as keys from the root."""
    page = parse((tree / key).read_bytes())
    hrefs = [a.get("href") for a in page.iter("a") if "url-list" in a.get("class", "")]
    return {posixpath.normpath(posixpath.join(posixpath.dirname(key), h)) for h in hrefs}


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.read()


def source(tree: Path, site: str, table: str, days: list[str], **where: int) -> pl.DataFrame:
    """The published Parquet day files of `days`, read one by one and filtered here."""
    partitions = {p.date: p for p in published_manifest(tree, site).tables[table].partitions}
    frames = [
        pl.from_arrow(pq.read_table(tree / partitions[d].files["parquet"].path)) for d in days
    ]
    frame = pl.concat(frames)  # type: ignore[arg-type]
    for column, value in where.items():
        frame = frame.filter(pl.col(column) == value)
    return frame.sort("timestamp", *where)


# Site 1 rack over the demo's three days; rack 1 of bank 1 has 144 rows a day.
DAYS = ["2022-09-01", "2022-09-02", "2022-09-03"]
PAGES = ["sites/1/rack/index.html", "sites/1/rack/2022-09/index.html"]


def test_every_month_has_url_lists_whose_every_url_the_server_answers(
    tree: Path, server: str
) -> None:
    fetched = 0
    for site in ("1", "2"):
        for name, table in published_manifest(tree, site).tables.items():
            months = sorted({p.date[:7] for p in table.partitions})
            linked = list_links(tree, f"sites/{site}/{name}/index.html")
            for month in months:
                lists = {f"sites/{site}/{name}/{month}/urls-{f}.txt" for f in ("csv", "parquet")}
                assert lists <= linked, (site, name, month)
                assert list_links(tree, f"sites/{site}/{name}/{month}/index.html") == lists
                for fmt in ("csv", "parquet"):
                    body = fetch(f"{server}sites/{site}/{name}/{month}/urls-{fmt}.txt").decode()
                    days = [p for p in table.partitions if p.date[:7] == month]
                    assert body.splitlines() == [p.files[fmt].path for p in days]
                    for p, path in zip(days, body.splitlines(), strict=True):
                        data = fetch(server + path)  # a real GET of every URL in the list
                        assert hashlib.sha256(data).hexdigest() == p.files[fmt].sha256, path
                        fetched += 1
    assert fetched == 2 * 3 * 8  # formats x days x tables


def test_the_url_list_snippet_runs_with_curl_and_wget(
    tree: Path, server: str, tmp_path: Path
) -> None:
    snippet = snippets(tree, "sites/1/rack/2022-09/index.html")["wget"]
    assert 'wget -x -nH -B "$BASE/" -i urls.txt' in snippet
    script = snippet.replace("BASE='http://127.0.0.1:8000'", f"BASE='{server.rstrip('/')}'", 1)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for p in published_manifest(tree, "1").tables["rack"].partitions:
        got = hashlib.sha256((tmp_path / p.files["parquet"].path).read_bytes()).hexdigest()
        assert got == p.files["parquet"].sha256


@pytest.mark.parametrize("key", PAGES, ids=["table", "month"])
def test_the_duckdb_range_snippet_gives_the_source_rows(
    tree: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = snippets(tree, key)["duckdb-range"]
    assert "\"date\" BETWEEN '2022-09-01' AND '2022-09-03' AND bank_id = 1 AND rack_id = 1" in sql
    monkeypatch.chdir(tree)  # "run the local examples in the folder that holds data/"
    got = duckdb.connect().sql(sql).pl()
    expected = source(tree, "1", "rack", DAYS, bank_id=1, rack_id=1)
    assert got.height == 3 * 144
    utc = pl.col("timestamp").dt.convert_time_zone("UTC")  # DuckDB answers in UTC
    assert_frame_equal(got.drop(HIVE).with_columns(utc), expected.with_columns(utc))
    assert sorted(got["date"].cast(pl.Utf8).unique()) == DAYS


@pytest.mark.parametrize("key", PAGES, ids=["table", "month"])
def test_the_polars_range_snippet_gives_the_source_rows(
    tree: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    scope: dict[str, Any] = {}
    exec(snippets(tree, key)["polars-range"], scope)  # the page's own example
    expected = source(tree, "1", "rack", DAYS, bank_id=1, rack_id=1)
    assert_frame_equal(scope["df"].drop(HIVE), expected)


def test_the_polars_web_snippet_reads_the_month_from_the_server(tree: Path, server: str) -> None:
    code = snippets(tree, "sites/1/rack/index.html")["polars-month"]
    code = code.replace('BASE = "http://127.0.0.1:8000"', f'BASE = "{server.rstrip("/")}"', 1)
    scope: dict[str, Any] = {}
    exec(code, scope)
    expected = source(tree, "1", "rack", DAYS, bank_id=1, rack_id=1)
    assert_frame_equal(scope["df"].sort("timestamp"), expected)


@pytest.mark.parametrize("key", PAGES, ids=["table", "month"])
def test_the_query_snippet_runs_and_gives_the_source_rows(
    tree: Path, server: str, key: str, tmp_path: Path
) -> None:
    script = snippets(tree, key)["query"]
    script = script.replace("BASE='http://127.0.0.1:8000'", f"BASE='{server.rstrip('/')}'", 1)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env["ESS_EXPORT_CACHE"] = str(tmp_path / "cache")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    got = (tmp_path / "1_rack_2022-09-01_2022-09-03.csv").read_text().splitlines()
    # The source: the published CSV day files, their rows of bank 1 rack 1.
    partitions = published_manifest(tree, "1").tables["rack"].partitions
    header, rows = None, []
    for p in partitions:
        lines = (tree / p.files["csv"].path).read_text().splitlines()
        header = lines[0]
        names = header.split(",")
        bank, rack = names.index("bank_id"), names.index("rack_id")
        rows += [r for r in lines[1:] if r.split(",")[bank] == "1" and r.split(",")[rack] == "1"]
    assert got[0] == header
    assert len(got) - 1 == 3 * 144
    assert sorted(got[1:]) == sorted(rows)
