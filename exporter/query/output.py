"""Query results out: pages, JSON, a terminal table, and the streamed writers by name."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import QueryError
from ..formats.csvtext import text_times, write_csv_frame
from .duck import first_line

__all__ = [
    "WRITERS",
    "Page",
    "head_frame",
    "page_json",
    "records_json",
    "render_table",
    "write_csv",
    "write_parquet",
]


@dataclass(frozen=True)
class Page:
    """One page of a query, with the old service's page-number links."""

    count: int
    page: int
    page_size: int
    next: int | None
    previous: int | None
    rows: pl.DataFrame
    """Timestamps are zone-aware in the site's zone."""

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.page_size))

    def to_arrow(self) -> pa.Table:
        return self.rows.to_arrow()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: count, next, previous, results (values as `page_json` writes)."""
        return {
            "count": self.count,
            "next": self.next,
            "previous": self.previous,
            "results": _json_records(self.rows),
        }


def _non_finite(value: Any) -> Any:
    # The published CSV's spelling, so that JSON keeps NaN and inf apart from null.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):  # SQL can return lists and structs
        return [_non_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _non_finite(v) for k, v in value.items()}
    return value


def _frame(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    try:
        frame = pl.from_arrow(data)
    except pl.exceptions.PolarsError as exc:
        raise QueryError(
            f"cannot convert the result ({first_line(exc)}); CAST such columns to VARCHAR"
        ) from None
    assert isinstance(frame, pl.DataFrame)
    return frame


def _json_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [_non_finite(row) for row in text_times(frame).to_dicts()]


def page_json(page: Page) -> str:
    """``{"count", "next", "previous", "results"}``: times RFC 3339 local, NaN/inf as strings."""
    return json.dumps(page.to_dict(), ensure_ascii=False, allow_nan=False, default=str) + "\n"


def records_json(table: pa.Table) -> str:
    """A SQL result as ``{"count": N, "results": [...]}`` with the same value conventions."""
    frame = _frame(table)
    document = {"count": frame.height, "results": _json_records(frame)}
    return json.dumps(document, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def write_csv(reader: pa.RecordBatchReader, out: IO[bytes]) -> int:
    """Stream batches as CSV with the published conventions; returns the rows written."""
    rows, header = 0, True
    for batch in reader:
        _csv_chunk(_frame(batch), out, header)
        header, rows = False, rows + batch.num_rows
    if header:  # no rows at all: still the header
        _csv_chunk(_frame(pa.Table.from_batches([], schema=reader.schema)), out, True)
    return rows


def _csv_chunk(frame: pl.DataFrame, out: IO[bytes], header: bool) -> None:
    try:
        write_csv_frame(frame, out, header)
    except pl.exceptions.PolarsError as exc:
        raise QueryError(
            f"cannot write this result as CSV ({first_line(exc)}); use --format json or parquet"
        ) from None


def write_parquet(reader: pa.RecordBatchReader, out: IO[bytes]) -> int:
    """Stream batches into one Parquet file (zstd); returns the rows written."""
    rows = 0
    with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


# The outputs that stream every row of a result, by `--format` name.
WRITERS: dict[str, Callable[[pa.RecordBatchReader, IO[bytes]], int]] = {
    "csv": write_csv,
    "parquet": write_parquet,
}


def head_frame(reader: pa.RecordBatchReader, limit: int) -> tuple[pl.DataFrame, bool]:
    """The first `limit` rows of a stream, and whether there were more (read no further)."""
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > limit:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return _frame(table.slice(0, limit)), rows > limit


def render_table(frame: pl.DataFrame) -> str:
    """A plain-text table of every row and column, for a terminal."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=1000,
        fmt_str_lengths=80,
        tbl_hide_dataframe_shape=True,
    ):
        return str(text_times(frame)) + "\n"
