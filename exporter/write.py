"""One partition's Arrow table -> deterministic Parquet and CSV bytes, with their facts.

Rows are sorted by timestamp, keys, then every other column, so the same rows always give
the same bytes whatever order the database returned them in. Parquet stores UTC-adjusted
instants with the site's zone recorded; CSV writes RFC 3339 local times with a colon offset.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from .sources import TableSchema

__all__ = ["CSV_DIALECT", "EncodedFile", "EncodedPartition", "encode", "file_key"]

# Readers expect the zone's offset with a colon and no padded fraction (RFC 3339).
CSV_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"
CSV_DIALECT = {
    "delimiter": ",",
    "lineTerminator": "\n",
    "quoteChar": '"',
    "doubleQuote": True,
    "header": True,
}
# About one day of one device at 1 Hz: a narrow time window reads one row group.
ROW_GROUP_SIZE = 86_400
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class EncodedFile:
    format: str
    key: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class EncodedPartition:
    date: str
    rows: int
    min_timestamp: str
    max_timestamp: str
    duplicates: int
    stats: dict[str, dict[str, Any]]
    files: dict[str, EncodedFile]


def file_key(fmt: str, site: str, table: str, date: str) -> str:
    """The published path of one partition's file (the layout contract)."""
    extension = {"parquet": "parquet", "csv": "csv"}[fmt]
    return f"data/{fmt}/site={site}/table={table}/date={date}/{site}_{table}_{date}.{extension}"


def encode(
    table: pa.Table,
    schema: TableSchema,
    *,
    site: str,
    date: str,
    timezone: str,
    formats: tuple[str, ...],
) -> EncodedPartition:
    """Sort, describe and serialise one non-empty partition."""
    names = [c.name for c in schema.columns]
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    order = frame.select(pl.arg_sort_by(names, nulls_last=True)).to_series()
    table = table.take(pa.array(order.to_numpy()))
    frame = frame[order]
    local_ts = table.column(0).cast(pa.timestamp("us", tz=timezone))
    table = table.set_column(0, names[0], local_ts)

    files: dict[str, EncodedFile] = {}
    for fmt in formats:
        data = _parquet(table) if fmt == "parquet" else _csv(frame, names[0], timezone)
        files[fmt] = EncodedFile(
            fmt,
            file_key(fmt, site, schema.table.name, date),
            data,
            hashlib.sha256(data).hexdigest(),
        )
    first, last = local_ts[0].as_py(), local_ts[-1].as_py()
    return EncodedPartition(
        date=date,
        rows=table.num_rows,
        min_timestamp=first.isoformat(),
        max_timestamp=last.isoformat(),
        duplicates=table.num_rows - frame.n_unique(),
        stats=_stats(frame, schema),
        files=files,
    )


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=ROW_GROUP_SIZE,
        write_statistics=True,
    )
    return sink.getvalue()


def _csv(frame: pl.DataFrame, ts_name: str, timezone: str) -> bytes:
    local = frame.with_columns(pl.col(ts_name).dt.convert_time_zone(timezone))
    # polars writes NULL as an empty field and "" as a quoted empty string (COPY ... CSV style).
    return local.write_csv(datetime_format=CSV_DATETIME_FORMAT, line_terminator="\n").encode()


def _stats(frame: pl.DataFrame, schema: TableSchema) -> dict[str, dict[str, Any]]:
    """min, max, mean (over finite values) and nulls per column; JSON-safe."""
    exprs: list[pl.Expr] = []
    numeric = [c.name for c in schema.columns[1:] if c.type in ("integer", "float")]
    for column in schema.columns[1:]:
        exprs.append(pl.col(column.name).null_count().alias(f"{column.name}\0nulls"))
    for name in numeric:
        values = pl.col(name)
        if frame.schema[name].is_float():
            values = values.filter(values.is_finite())
        exprs += [
            values.min().cast(pl.Float64).alias(f"{name}\0min"),
            values.max().cast(pl.Float64).alias(f"{name}\0max"),
            values.mean().alias(f"{name}\0mean"),
        ]
    row = frame.select(exprs).row(0, named=True) if exprs else {}
    stats: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        name, stat = key.split("\0")
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        stats.setdefault(name, {})[stat] = value
    return {
        name: {k: s[k] for k in ("min", "max", "mean", "nulls") if k in s}
        for name, s in stats.items()
    }
