"""A format is one module and one registry line: a throwaway TSV format, registered here
only, flows to the published files, the manifest entries and datapackage.json."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from exporter import formats
from exporter.config import load
from exporter.demo import write_sqlite
from exporter.errors import ConfigError
from exporter.formats import Format
from exporter.formats.csvtext import text_times
from exporter.pipeline import run
from exporter.storage import LocalTarget
from exporter.verification import verify
from tests.conftest import DEMO_LATER, published_manifest

# --- what a new format's module would hold ------------------------------------------------


class TsvFile:
    """Tab-separated values, times spelled as in the published CSV."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed in finish
        self.hash = hashlib.sha256()

    def write(self, group: pa.Table) -> None:
        frame = pl.from_arrow(group)
        assert isinstance(frame, pl.DataFrame)
        sink = io.BytesIO()
        header = self.file.tell() == 0
        text_times(frame).write_csv(sink, separator="\t", include_header=header)
        self.hash.update(sink.getvalue())
        self.file.write(sink.getvalue())

    def finish(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self.hash.hexdigest()


TSV = Format(
    name="tsv",
    extension="tsv",
    content_type="text/tab-separated-values; charset=utf-8",
    mediatype="text/tab-separated-values",
    encoder=TsvFile,
    resource={"encoding": "utf-8", "dialect": {"delimiter": "\t", "header": True}},
)

# -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def registered(fmt: Format) -> Iterator[Format]:
    formats.register(fmt)  # the registry line
    try:
        yield fmt
    finally:
        formats.unregister(fmt.name)


def _config_file(tmp_path: Path) -> Path:
    text = Path("config/demo.toml").read_text()
    assert 'formats = ["parquet", "csv"]' in text
    path = tmp_path / "tsv.toml"
    path.write_text(
        text.replace('formats = ["parquet", "csv"]', 'formats = ["parquet", "csv", "tsv"]')
    )
    return path


def test_a_registered_format_reaches_the_files_the_manifest_and_the_data_package(
    tmp_path: Path,
) -> None:
    src, out = tmp_path / "src", tmp_path / "public"
    write_sqlite(src, start=dt.date(2022, 9, 1), days=1, interval_s=3600)
    env = {"ESS_DEMO_DIR": str(src)}
    with registered(TSV):
        assert formats.names() == ("parquet", "csv", "tsv")
        config = load(_config_file(tmp_path), env=env)
        assert config.formats == ("parquet", "csv", "tsv")
        run(config, target=str(out), now=DEMO_LATER)
        report = verify(LocalTarget(out))
    assert formats.names() == ("parquet", "csv")

    day = published_manifest(out, "1").tables["rack"].partitions[0]
    assert list(day.files) == ["parquet", "csv", "tsv"]
    entry = day.files["tsv"]
    assert entry.path == "data/tsv/site=1/table=rack/date=2022-09-01/1_rack_2022-09-01.tsv"
    data = (out / entry.path).read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.bytes, entry.sha256)
    assert (report.checked, report.problems) == (len(list((out / "data").rglob("*.*"))), [])
    # The same rows as the day's CSV, tab-separated.
    rows = list(csv.reader(io.StringIO(data.decode()), delimiter="\t"))
    published = list(csv.reader(io.StringIO((out / day.files["csv"].path).read_text())))
    assert rows == published and len(rows) == 1 + day.rows

    package = json.loads((out / "datapackage.json").read_text())
    names = [r["name"] for r in package["resources"] if r["name"].startswith("1-rack-")]
    assert names == ["1-rack-csv", "1-rack-parquet", "1-rack-tsv"]
    resource = next(r for r in package["resources"] if r["name"] == "1-rack-tsv")
    assert {k: v for k, v in resource.items() if k != "schema"} == {
        "name": "1-rack-tsv",
        "title": "Site 1: rack (TSV)",
        "path": [entry.path],
        "format": "tsv",
        "mediatype": "text/tab-separated-values",
        "encoding": "utf-8",
        "dialect": {"delimiter": "\t", "header": True},
    }

    # Unregistered again: config no longer knows the name.
    with pytest.raises(ConfigError, match=r"export\.formats.*\['parquet', 'csv'\]"):
        load(_config_file(tmp_path), env=env)


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="'csv' is already registered"):
        formats.register(formats.get("csv"))
    assert formats.names() == ("parquet", "csv")
