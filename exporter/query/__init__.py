"""The query helper: the old API's questions, answered from the published files with DuckDB."""

from __future__ import annotations

from .dataset import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Dataset,
    InvalidPage,
    Limits,
    Page,
    QueryError,
    connect,
    head_frame,
    page_json,
    records_json,
    render_table,
    write_csv,
    write_parquet,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Dataset",
    "InvalidPage",
    "Limits",
    "Page",
    "QueryError",
    "connect",
    "head_frame",
    "page_json",
    "records_json",
    "render_table",
    "write_csv",
    "write_parquet",
]
