"""One partition's sorted record batches -> deterministic files, one per format, with facts.

The source returns rows sorted by timestamp, keys, then every other column, so the same rows
always give the same bytes. Batches are re-cut into row groups of a fixed size, so the
output does not depend on how the driver chunked its stream either. Each format is encoded
on its own thread while the main thread keeps reading: memory is bounded by a few row
groups, not by the partition.

Each format's encoder comes from the registry (`exporter.formats`): Parquet stores
UTC-adjusted instants with the site's zone recorded; CSV writes RFC 3339 local times with a
colon offset.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa

from .formats import Encoder
from .formats import get as get_format
from .formats.parquet import ROW_GROUP_SIZE
from .layout import file_key

if TYPE_CHECKING:  # the writer takes a schema; it never reads a database
    from .sources import TableSchema

__all__ = [
    "EncodedFile",
    "EncodedPartition",
    "PartitionWriter",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUEUE_DEPTH = 3  # row groups waiting per encoder: bounds memory, keeps both cores busy


@dataclass(frozen=True)
class EncodedFile:
    format: str
    key: str
    path: Path
    """The finished file in the staging folder, until it is published."""
    size: int
    sha256: str

    @property
    def content_type(self) -> str:
        return get_format(self.format).content_type


@dataclass(frozen=True)
class EncodedPartition:
    date: str
    rows: int
    min_timestamp: str
    max_timestamp: str
    duplicates: int
    stats: dict[str, dict[str, Any]]
    files: dict[str, EncodedFile]


class _Encoder(threading.Thread):
    """Hands each row group to one file's encoder, on its own thread."""

    def __init__(self, file: Encoder) -> None:
        super().__init__(daemon=True)
        self.file = file
        self.inbox: queue.Queue[pa.Table | None] = queue.Queue(_QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.sha256 = ""

    def run(self) -> None:
        ended = False  # the producer's last message (None) was taken
        try:
            while (group := self.inbox.get()) is not None:
                if self.error is None:
                    self.file.write(group)
            ended = True
            self.sha256 = self.file.finish()
        except BaseException as exc:  # re-raised on the caller's thread by close()
            self.error = exc
            # Drain so the producer never blocks; not after the end, when nothing more comes
            # (a file that cannot be finished, e.g. on a full disk, hung close() for ever).
            while not ended and self.inbox.get() is not None:
                continue


class PartitionWriter:
    """Feed sorted batches with `write`, then `close` to get the files and their facts."""

    def __init__(
        self,
        schema: TableSchema,
        *,
        site: str,
        date: str,
        timezone: str,
        formats: tuple[str, ...],
        staging: Path,
    ) -> None:
        self.schema, self.timezone, self.date = schema, timezone, date
        self.names = [c.name for c in schema.columns]
        table = schema.table.name
        kinds = {name: get_format(name) for name in formats}
        self.keys = {f: file_key(f, site, table, date, k.extension) for f, k in kinds.items()}
        self.paths = {
            f: staging / f".{site}_{table}_{date}.{k.extension}" for f, k in kinds.items()
        }
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.duplicates = 0
        self.previous_row: pl.DataFrame | None = None
        self.first: int | None = None  # microseconds since the epoch
        self.last: int | None = None
        self.stats = _Stats(schema)
        staging.mkdir(parents=True, exist_ok=True)
        self.encoders = {f: _Encoder(k.encoder(self.paths[f])) for f, k in kinds.items()}
        for encoder in self.encoders.values():
            encoder.start()

    # -- producer side --------------------------------------------------------------------
    def write(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Add rows (already sorted, continuing the previous batch)."""
        if batch.num_rows == 0:
            return
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= ROW_GROUP_SIZE:
            joined = pa.concat_tables(self.pending)
            self._group(joined.slice(0, ROW_GROUP_SIZE))
            rest = joined.slice(ROW_GROUP_SIZE)
            self.pending, self.pending_rows = [rest], rest.num_rows

    def _group(self, group: pa.Table) -> None:
        group = group.combine_chunks()
        local = group.column(0).cast(pa.timestamp("us", tz=self.timezone))
        group = group.set_column(0, self.names[0], local)
        # As integers: pyarrow's as_py() on a zoned timestamp imports pandas when it is
        # installed, which cost 0.34 s of the first partition of a run.
        if self.first is None:
            self.first = local[0].value
        self.last = local[-1].value
        self.rows += group.num_rows
        frame = pl.from_arrow(group)
        assert isinstance(frame, pl.DataFrame)
        self.duplicates += self._adjacent_equal(frame)
        self.stats.add(frame)
        for encoder in self.encoders.values():
            encoder.inbox.put(group)

    def _adjacent_equal(self, frame: pl.DataFrame) -> int:
        """Exact duplicates: sorted by every column, equal rows are neighbours."""
        joined = frame if self.previous_row is None else pl.concat([self.previous_row, frame])
        same = pl.all_horizontal(pl.all().eq_missing(pl.all().shift(1)))
        count = int(joined.select(same.fill_null(False).sum()).item())
        self.previous_row = frame.tail(1)
        return count

    def close(self) -> EncodedPartition | None:
        """Finish every file; None when no row was written."""
        if self.pending_rows:
            self._group(pa.concat_tables(self.pending))
            self.pending, self.pending_rows = [], 0
        for encoder in self.encoders.values():
            encoder.inbox.put(None)
        for encoder in self.encoders.values():
            encoder.join()
        for encoder in self.encoders.values():
            if encoder.error is not None:
                self.discard()
                raise encoder.error
        if self.rows == 0:
            self.discard()
            return None
        files = {}
        for fmt, path in self.paths.items():
            digest = self.encoders[fmt].sha256
            files[fmt] = EncodedFile(fmt, self.keys[fmt], path, path.stat().st_size, digest)
        return EncodedPartition(
            date=self.date,
            rows=self.rows,
            min_timestamp=self._local(self.first),
            max_timestamp=self._local(self.last),
            duplicates=self.duplicates,
            stats=self.stats.result(),
            files=files,
        )

    def _local(self, micros: int | None) -> str:
        instant = _EPOCH + timedelta(microseconds=micros or 0)
        return instant.astimezone(ZoneInfo(self.timezone)).isoformat()

    def discard(self) -> None:
        """Remove the staged files (after a failure, or once published)."""
        for path in self.paths.values():
            path.unlink(missing_ok=True)


class _Stats:
    """min, max, mean (over finite values) and nulls per column, accumulated per row group."""

    def __init__(self, schema: TableSchema) -> None:
        self.columns = [c for c in schema.columns[1:]]
        self.numeric = {c.name for c in self.columns if c.type in ("integer", "float")}
        self.acc: dict[str, dict[str, Any]] = {
            c.name: {"min": None, "max": None, "sum": 0.0, "count": 0, "nulls": 0}
            for c in self.columns
        }

    def add(self, frame: pl.DataFrame) -> None:
        exprs: list[pl.Expr] = []
        for column in self.columns:
            name = column.name
            exprs.append(pl.col(name).null_count().alias(f"{name}\0nulls"))
            if name not in self.numeric:
                continue
            values = pl.col(name)
            if frame.schema[name].is_float():
                values = values.filter(values.is_finite())
            exprs += [
                values.min().cast(pl.Float64).alias(f"{name}\0min"),
                values.max().cast(pl.Float64).alias(f"{name}\0max"),
                values.cast(pl.Float64).sum().alias(f"{name}\0sum"),
                values.count().alias(f"{name}\0count"),
            ]
        for key, value in frame.select(exprs).row(0, named=True).items():
            name, stat = key.split("\0")
            acc = self.acc[name]
            if stat in ("nulls", "count", "sum"):
                acc[stat] += value or 0
            elif value is not None:
                pick = min if stat == "min" else max
                acc[stat] = value if acc[stat] is None else pick(acc[stat], value)

    def result(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, acc in self.acc.items():
            if name not in self.numeric:
                out[name] = {"nulls": acc["nulls"]}
                continue
            mean = acc["sum"] / acc["count"] if acc["count"] else None
            out[name] = {
                "min": acc["min"],
                "max": acc["max"],
                "mean": mean if mean is not None and math.isfinite(mean) else None,
                "nulls": acc["nulls"],
            }
        return out
