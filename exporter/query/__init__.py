"""The query helper: the old API's questions, answered from the published files with DuckDB.

    dataset = Dataset.open("./public")          # or s3://bucket/prefix, https://host/base/
    page = dataset.query("1", "rack", bank=1, rack=1, fields="timestamp,rack_soc",
                         start="2022-09-01T10:00:00", end="2022-09-01T12:00:00", page=1)
    page.count, page.next, page.previous, page.rows   # rows: a polars DataFrame
    dataset.rows(...)                           # every matching row, streamed (CSV download)
    dataset.sql("SELECT site, avg(rack_soc) FROM rack GROUP BY site")

The package's parts, each one way: `request` (the question and its values), `selection`
(checked against a manifest), `files` (manifests, local paths, the reader rule), `sql` (the
sealed sandbox), `dataset` (the `Dataset`), `output` (pages, JSON, writers by name), with
`engine` (the locked DuckDB database), `cache` (remote files, verified) and `duck` below.
"""

from __future__ import annotations

from ..errors import QueryError
from .dataset import Dataset
from .duck import connect
from .engine import Limits
from .output import (
    WRITERS,
    Page,
    head_frame,
    page_json,
    records_json,
    render_table,
    write_csv,
    write_parquet,
)
from .request import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, InvalidPage, Request

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "WRITERS",
    "Dataset",
    "InvalidPage",
    "Limits",
    "Page",
    "QueryError",
    "Request",
    "connect",
    "head_frame",
    "page_json",
    "records_json",
    "render_table",
    "write_csv",
    "write_parquet",
]
