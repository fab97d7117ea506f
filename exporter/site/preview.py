"""The static preview of a table page: the first rows of its latest complete day, read at
publish time from the day's Parquet file, so a reader sees rows with no script at all.

Only the table pages a run renders get one read each, and a read takes only what it needs:
the file's footer and the first row group's column chunks (ranged GETs on S3, a seek on a
local target), never the whole day.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ExportError
from ..manifest import Partition, SiteManifest
from ..storage import LocalTarget, S3Target, Target

__all__ = ["PREVIEW_ROWS", "Preview", "latest_complete", "read_preview", "read_previews"]

PREVIEW_ROWS = 20


@dataclass(frozen=True)
class Preview:
    date: str
    """The day shown (the table's latest complete day)."""
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    """Cells as text: local RFC 3339 times, shortest floats, '' for NULL."""
    total: int
    """The day's rows, of which `rows` are the first."""


def latest_complete(partitions: Iterable[Partition]) -> Partition | None:
    complete = [p for p in partitions if p.complete and "parquet" in p.files and p.rows]
    return max(complete, key=lambda p: p.date, default=None)


def read_previews(
    target: Target, manifests: dict[str, SiteManifest], wanted: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Preview]:
    """Previews of the (site, table) pages in `wanted`; a table whose file cannot be read
    gets none (its page says so) rather than failing the publish: `verify` reports it."""
    previews = {}
    for site, table in wanted:
        manifest = manifests.get(site)
        if manifest is None or table not in manifest.tables:
            continue
        day = latest_complete(manifest.tables[table].partitions)
        if day is None:
            continue
        try:
            previews[site, table] = read_preview(target, day, manifest.timezone)
        except (OSError, pa.ArrowException, ExportError, ValueError):
            continue
    return previews


def read_preview(
    target: Target, day: Partition, timezone: str, rows: int = PREVIEW_ROWS
) -> Preview:
    entry = day.files["parquet"]
    with _open(target, entry.path, entry.bytes) as source:
        parquet = pq.ParquetFile(source)
        batches = (
            parquet.iter_batches(batch_size=rows, row_groups=[0])
            if parquet.num_row_groups
            else iter(())
        )
        batch = next(batches, None)
    if batch is None:
        return Preview(day.date, (), (), day.rows)
    zone = ZoneInfo(timezone)
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    cells = tuple(
        tuple(_text(column[r], zone) for column in columns) for r in range(batch.num_rows)
    )
    return Preview(day.date, tuple(batch.schema.names), cells, day.rows)


def _text(value: Any, zone: ZoneInfo) -> str:
    """A cell as the CSV files write it (RFC 3339 local times, shortest round-trip floats)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()  # fractional seconds only when present
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def _open(target: Target, key: str, size: int) -> io.BufferedReader | io.BytesIO:
    if isinstance(target, LocalTarget):
        return (target.root / key).open("rb")
    if isinstance(target, S3Target):
        return io.BufferedReader(_S3Range(target, key, size), buffer_size=1 << 16)
    data = target.get(key)
    if data is None:
        raise OSError(f"{target.uri}/{key} is missing")
    return io.BytesIO(data)


class _S3Range(io.RawIOBase):
    """An S3 object as a seekable file: each read is one ranged GET."""

    def __init__(self, target: S3Target, key: str, size: int) -> None:
        self.target, self.size, self.position = target, size, 0
        self.published = key
        self.key = f"{target.prefix}/{key}" if target.prefix else key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size or not len(buffer):
            return 0
        last = min(self.position + len(buffer), self.size) - 1
        # Through the target, so that a store's error is the project's one-line PublishError.
        reply = self.target._call(
            self.published, "get_object", Key=self.key, Range=f"bytes={self.position}-{last}"
        )
        data = reply["Body"].read()
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
