"""The project's CSV dialect as bytes: the one encoder of published files and query output."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import IO

import polars as pl
import pyarrow as pa

from .dialect import CSV_DATETIME_FORMAT

__all__ = ["CsvFile", "text_times", "write_csv_frame"]


def text_times(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as RFC 3339 local strings with a colon offset, as in the published CSV.

    A timestamp without a zone (only SQL can make one) is written without an offset.
    """
    return frame.with_columns(
        _timestamp_text(frame.get_column(name), bool(dtype.time_zone))
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def _timestamp_text(ts: pl.Series, zoned: bool) -> pl.Series:
    """A timestamp column as text, each run of equal instants formatted once.

    Formatting a zoned timestamp is the dearest part of writing a CSV row, and a table of
    many devices repeats each instant once per device (8 racks: 8 times); the text is the
    same as formatting every value.
    """
    spelling = CSV_DATETIME_FORMAT if zoned else CSV_DATETIME_FORMAT.removesuffix("%:z")
    runs = ts.rle()
    if runs.len() * 2 > ts.len():
        return ts.dt.to_string(spelling)
    text = runs.struct.field("value").dt.to_string(spelling)
    return text.gather(ts.rle_id()).alias(ts.name)


def write_csv_frame(frame: pl.DataFrame, out: IO[bytes], header: bool) -> None:
    """Rows in the dialect: NULL is an empty field, "" a quoted empty string (COPY ... CSV)."""
    text_times(frame).write_csv(out, include_header=header, line_terminator="\n")


class CsvFile:
    """A published CSV file, hashed as it is written and synced group by group."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed in finish
        self.hash = hashlib.sha256()

    def write(self, group: pa.Table) -> None:
        frame = pl.from_arrow(group)
        assert isinstance(frame, pl.DataFrame)
        sink = io.BytesIO()
        write_csv_frame(frame, sink, header=self.file.tell() == 0)
        data = sink.getvalue()
        self.hash.update(data)
        self.file.write(data)
        # Durable before it is renamed into place. Synced group by group on this thread,
        # while the others work, so the end of the partition waits for one group's worth.
        self.file.flush()
        os.fdatasync(self.file.fileno())

    def finish(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self.hash.hexdigest()
