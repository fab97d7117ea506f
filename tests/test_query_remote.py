"""Remote roots (moto's S3 server, a static HTTP server) answer like the directory they copy.

They fetch only the files a question needs, into a cache verified by sha256; a damaged file
is refused after one re-read of the manifest, a republished one is taken from the new one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from exporter.errors import PublishError
from exporter.query import Dataset, Page, QueryError
from exporter.storage import HttpReader, Reader, S3Target
from tests.test_query import random_cases, rows_of
from tests.test_query_cli import ess_export

DAY1_RACK = "data/parquet/site=1/table=rack/date=2022-09-01/1_rack_2022-09-01.parquet"
MANIFEST_1 = "sites/1/manifest.json"
# The old API's example: one rack, two fields, 10:00 to 12:00 of day 1 (one file).
QUESTION: dict[str, Any] = {
    "site": "1", "table": "rack", "bank": 1, "rack": 1, "fields": "timestamp,rack_soc",
    "start": "2022-09-01T10:00:00", "end": "2022-09-01T12:00:00",
}  # fmt: skip


# --- servers ------------------------------------------------------------------------------


@dataclass
class HttpRoot:
    """A static HTTP server of a folder; records the path of every GET."""

    folder: Path
    url: str = ""
    gets: list[str] = field(default_factory=list)

    def count(self, key: str) -> int:
        return self.gets.count("/" + key)


@contextlib.contextmanager
def serve_http(folder: Path) -> Iterator[HttpRoot]:
    root = HttpRoot(folder)

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            root.gets.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield root
    finally:
        server.shutdown()
        thread.join()


@dataclass
class S3Root:
    endpoint: str
    bucket: str = "ess"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def upload(self, folder: Path, prefix: str) -> str:
        client = self.client()
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
        return f"s3://{self.bucket}/{prefix}"

    def target(self, uri: str) -> S3Target:
        return S3Target(uri, self.client())


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Root]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    root = S3Root(f"http://{host}:{port}")
    root.client().create_bucket(Bucket=root.bucket)
    try:
        yield root
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_uri(s3: S3Root, published: Path) -> str:
    return s3.upload(published, "public")


@pytest.fixture(scope="module")
def http(published: Path) -> Iterator[HttpRoot]:
    with serve_http(published) as root:
        yield root


def open_remote(
    kind: str, s3: S3Root, s3_uri: str, http: HttpRoot, cache: Path
) -> tuple[Dataset, Reader]:
    target: Reader = s3.target(s3_uri) if kind == "s3" else HttpReader(http.url)
    return Dataset.open(target.uri, target=target, cache_dir=cache), target


def same_page(a: Page, b: Page) -> bool:
    return (a.count, a.next, a.previous, a.rows.columns, rows_of(a.rows.rows())) == (
        b.count, b.next, b.previous, b.rows.columns, rows_of(b.rows.rows()),
    )  # fmt: skip


def table_rows(table: pa.Table) -> list[tuple]:
    return rows_of([tuple(row.values()) for row in table.to_pylist()])


# --- equivalence --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "http"])
def test_remote_roots_answer_like_the_directory(
    kind: str, s3: S3Root, s3_uri: str, http: HttpRoot, published: Path, tmp_path: Path
) -> None:
    local = Dataset.open(str(published))
    remote, _ = open_remote(kind, s3, s3_uri, http, tmp_path)
    for case in random_cases(published, 30, seed=5):
        request = {k: v for k, v in case.__dict__.items() if k not in ("page", "page_size")}
        request["fields"] = list(case.fields) if case.fields else None
        for page in (1, "last"):
            a = local.query(**request, page=page, page_size=case.page_size)
            b = remote.query(**request, page=page, page_size=case.page_size)
            assert same_page(a, b), case.id
        assert table_rows(remote.rows(**request).read_all()) == table_rows(
            local.rows(**request).read_all()
        )
    statement = "SELECT site, date, count(*), avg(rack_soc) FROM rack GROUP BY ALL ORDER BY ALL"
    assert table_rows(remote.sql(statement)) == table_rows(local.sql(statement))
    # Only Parquet files were fetched, each once, and never a CSV.
    assert all(k.endswith(".parquet") for k in remote.cache.fetched)  # type: ignore[union-attr]
    assert len(set(remote.cache.fetched)) == len(remote.cache.fetched)  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["s3", "http"])
def test_remote_fetches_only_the_pruned_file_and_then_nothing(
    kind: str, s3: S3Root, s3_uri: str, http: HttpRoot, tmp_path: Path
) -> None:
    dataset, target = open_remote(kind, s3, s3_uri, http, tmp_path)
    gets, requests = len(http.gets), target.requests
    first = dataset.query(**QUESTION)
    assert first.count == 25
    assert dataset.cache.fetched == [DAY1_RACK]  # type: ignore[union-attr]
    assert target.requests - requests == 1  # one request on the wire
    if kind == "http":
        assert http.gets[gets:] == ["/" + DAY1_RACK]
    # The same question again: nothing at all goes over the network.
    requests = target.requests
    assert same_page(dataset.query(**QUESTION), first)
    assert target.requests == requests
    # A new process (new Dataset, same cache folder) reads the catalog and manifests only.
    again, target = open_remote(kind, s3, s3_uri, http, tmp_path)
    opened = target.requests
    assert same_page(again.query(**QUESTION), first)
    assert again.cache.fetched == [] and target.requests == opened  # type: ignore[union-attr]
    # catalog.json, the two site manifests and their journals (none: no publish under way)
    assert opened == 5


def test_sql_on_a_remote_root_fetches_the_tables_it_names(
    s3: S3Root, s3_uri: str, http: HttpRoot, tmp_path: Path
) -> None:
    dataset, _ = open_remote("http", s3, s3_uri, http, tmp_path)
    assert dataset.sql("SELECT count(*) AS n FROM etc_2").to_pylist() == [{"n": 576}]
    assert dataset.cache.fetched == [  # type: ignore[union-attr]
        "data/parquet/site=2/table=etc/date=2022-09-01/2_etc_2022-09-01.parquet",
        "data/parquet/site=2/table=etc/date=2022-09-02/2_etc_2022-09-02.parquet",
    ]


def test_a_remote_root_lists_every_view_and_fetches_only_the_named_ones(
    s3: S3Root, s3_uri: str, http: HttpRoot, published: Path, tmp_path: Path
) -> None:
    """Stand-ins make the catalog look as a directory's does, without fetching a file."""
    dataset, _ = open_remote("http", s3, s3_uri, http, tmp_path)
    columns = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "ORDER BY table_name, ordinal_position"
    )
    with Dataset.open(str(published)) as local:
        assert table_rows(dataset.sql(columns)) == table_rows(local.sql(columns))
        assert dataset.sql("SHOW TABLES").to_pylist() == local.sql("SHOW TABLES").to_pylist()
    assert dataset.cache.fetched == []  # type: ignore[union-attr]
    # A view reached without its name in the text (a computed name) fails, never reads empty.
    with pytest.raises(QueryError) as raised:
        dataset.sql("SELECT count(*) FROM query_table(concat('et', 'c_2'))")
    assert "view etc_2 was not named in the statement, so its files were not fetched" in str(
        raised.value
    )
    assert dataset.sql("DESCRIBE etc_1").num_rows > 0
    assert dataset.cache.fetched == [  # type: ignore[union-attr]
        "data/parquet/site=1/table=etc/date=2022-09-01/1_etc_2022-09-01.parquet",
        "data/parquet/site=1/table=etc/date=2022-09-02/1_etc_2022-09-02.parquet",
    ]


# --- damaged and republished files --------------------------------------------------------


@pytest.fixture()
def copy(published: Path, tmp_path: Path) -> Path:
    """A private copy of the publish, free to damage."""
    folder = tmp_path / "copy"
    shutil.copytree(published, folder)
    return folder


def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte off
    path.write_bytes(bytes(data))


def test_damaged_http_file_is_refused_after_one_manifest_reread(copy: Path, tmp_path: Path) -> None:
    damage(copy / DAY1_RACK)
    with serve_http(copy) as root:
        dataset = Dataset.open(root.url, cache_dir=tmp_path / "cache")
        with pytest.raises(PublishError) as raised:
            dataset.query(**QUESTION)
        assert root.count(MANIFEST_1) == 2  # at open, and once more after the mismatch
        assert root.count(DAY1_RACK) == 1
    message = str(raised.value)
    assert message == (
        f"{root.url}{DAY1_RACK} does not match its sha256 in {MANIFEST_1}, also after "
        "re-reading the manifest: the published file is damaged; run `ess-export verify "
        f"--target {root.url.rstrip('/')}`"
    )
    assert raised.value.exit_code == 1
    assert not list((tmp_path / "cache").rglob("*.parquet"))  # never cached, never read


def test_damaged_s3_object_is_refused(s3: S3Root, copy: Path, tmp_path: Path) -> None:
    uri = s3.upload(copy, "damaged")
    damage(copy / DAY1_RACK)
    s3.client().put_object(
        Bucket=s3.bucket, Key=f"damaged/{DAY1_RACK}", Body=(copy / DAY1_RACK).read_bytes()
    )
    dataset = Dataset.open(uri, target=s3.target(uri), cache_dir=tmp_path / "cache")
    with pytest.raises(PublishError, match="ess-export verify") as raised:
        dataset.query(**QUESTION)
    assert f"{uri}/{DAY1_RACK} does not match its sha256" in str(raised.value)


def republish_without_rack(root: Path, key: str, rack: int) -> int:
    """Replace a day's file as a publish would (file first, then the manifest entry)."""
    table = pq.read_table(root / key)
    table = table.filter(pc.invert(pc.equal(table["rack_id"], rack)))
    pq.write_table(table, root / key, compression="zstd")
    data = (root / key).read_bytes()
    document = json.loads((root / MANIFEST_1).read_text())
    for partition in document["tables"]["rack"]["partitions"]:
        entry = partition["files"]["parquet"]
        if entry["path"] == key:
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
            partition["rows"] = table.num_rows
    (root / MANIFEST_1).write_text(json.dumps(document))
    return table.num_rows


def test_republished_file_is_read_from_the_new_manifest(copy: Path, tmp_path: Path) -> None:
    with serve_http(copy) as root:
        dataset = Dataset.open(root.url, cache_dir=tmp_path / "cache")
        rows = republish_without_rack(copy, DAY1_RACK, rack=1)  # after the manifest was read
        page = dataset.query("1", "rack", start="2022-09-01", end="2022-09-01T23:59:59.999999")
        assert page.count == rows
        assert dataset.query(**QUESTION).count == 0  # rack 1 is gone from the new file
        assert root.count(MANIFEST_1) == 2
        assert root.count(DAY1_RACK) == 2  # the old version (refused), then the new one


def test_damaged_cache_copy_is_fetched_again(http: HttpRoot, tmp_path: Path) -> None:
    first = Dataset.open(http.url, cache_dir=tmp_path)
    expected = first.query(**QUESTION)
    [cached] = [p for p in tmp_path.rglob("*.parquet")]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() in cached.name  # sha in the name
    damage(cached)
    again = Dataset.open(http.url, cache_dir=tmp_path)
    assert same_page(again.query(**QUESTION), expected)
    assert again.cache.fetched == [DAY1_RACK]  # type: ignore[union-attr]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() in cached.name


# --- the command line on every kind of root -----------------------------------------------


def test_cli_answers_the_same_from_every_root(
    s3: S3Root, s3_uri: str, http: HttpRoot, published: Path, tmp_path: Path
) -> None:
    env = {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    commands = {
        "page": ["query", "--site", "1", "--table", "rack", "--bank", "1", "--rack", "1",
                 "--start", "2022-09-01T23:00", "--end", "2022-09-02T01:00", "--page-size", "5",
                 "--page", "2"],
        "download": ["query", "--site", "2", "--table", "bank", "--format", "csv",
                     "--start", "2022-09-01T12:00:00+09:00"],
        "sql": ["sql", "--format", "json",
                "SELECT date, count(*) AS n FROM etc_2 GROUP BY 1 ORDER BY 1"],
    }  # fmt: skip
    jobs = {
        (root, name): [args[0], uri, *args[1:]]
        for root, uri in (("dir", str(published)), ("s3", s3_uri), ("http", http.url))
        for name, args in commands.items()
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(
            zip(
                jobs,
                pool.map(
                    lambda key: ess_export(
                        *jobs[key], env={**env, "ESS_EXPORT_CACHE": str(tmp_path / key[0])}
                    ),
                    jobs,
                ),
                strict=True,
            )
        )
    for (root, name), result in runs.items():
        assert result.returncode == 0 and result.stderr == "", (root, name, result.stderr)
        assert result.stdout == runs["dir", name].stdout, (root, name)
    assert json.loads(runs["s3", "page"].stdout)["previous"] == 1
    # A directory is read in place: nothing cached (only the empty folder for temporary files).
    assert [p.name for p in (tmp_path / "dir").rglob("*")] == ["tmp"]
