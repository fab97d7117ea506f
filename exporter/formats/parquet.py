"""Parquet: zstd, statistics, UTC-adjusted instants with the site's zone recorded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Format

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["PARQUET", "ROW_GROUP_SIZE", "ParquetFile"]

# About one day of one device at 1 Hz: a narrow time window reads one row group.
ROW_GROUP_SIZE = 86_400


class ParquetFile:
    """A published Parquet file, one row group per group written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, group: pa.Table) -> None:
        if self.writer is None:
            import pyarrow.parquet as pq  # loaded by a run that writes, not by config

            self.writer = pq.ParquetWriter(
                self.path, group.schema, compression="zstd", write_statistics=True
            )
        self.writer.write_table(group, row_group_size=ROW_GROUP_SIZE)

    def finish(self) -> str:
        if self.writer is None:
            return ""
        self.writer.close()
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())
        # The file is small next to the CSV: read it back rather than hash while writing.
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


PARQUET = Format(
    name="parquet",
    extension="parquet",
    content_type="application/vnd.apache.parquet",
    mediatype="application/vnd.apache.parquet",
    encoder=ParquetFile,
    # Frictionless reads Parquet through pandas, which turns NULL integers into NaN and
    # then fails them as integers: the Parquet files are listed (and their schema
    # described) as files, the CSV files are the table it validates, so
    # `frictionless validate datapackage.json` passes.
    resource={"type": "file"},
)
