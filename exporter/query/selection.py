"""A request checked against its table's manifest: the days to read, the SQL, the order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from ..errors import QueryError
from ..manifest import Partition, TableManifest
from .duck import quote
from .request import Request, check_fields, device_column, device_id, parse_time

__all__ = ["TOTAL", "Selection", "page_partitions", "select"]

# A manifest names one schema per table, but union_by_name costs little and keeps a
# table readable should two days ever differ.
_FILES = "read_parquet($files, union_by_name=true)"
_FILES_NAMED = "read_parquet($files, union_by_name=true, filename=true)"
TOTAL = "__total"
_ARROW_TYPES = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class Selection:
    """A checked request: what to read, from which days, in which order."""

    site: str
    table: str
    schema: pa.Schema
    """Output columns and their types."""
    order: tuple[str, ...]
    where: str
    params: dict[str, Any]
    partitions: tuple[Partition, ...]
    """The days that meet the range, in time order."""
    known_rows: tuple[int | None, ...]
    """Per partition: its row count when the manifest tells it (day inside the range)."""
    disjoint: bool
    """Partitions do not overlap in time, so a page can be read from the days it falls in."""
    file_order: bool = False
    """Every column, in the manifest's order: the order each file is written in."""
    descending: frozenset[str] = frozenset()
    """Order columns sorted high to low (the keys, for `descending_keys`)."""

    def select_sql(self, page: bool, total: bool = False, one_file: bool = False) -> str:
        columns = ", ".join(quote(name) for name in self.schema.names)
        if total:  # published names never start with "_" (see sources.normalise)
            columns += f", count(*) OVER () AS {TOTAL}"
        order = ", ".join(
            f"{quote(name)} {'DESC' if name in self.descending else 'ASC'} NULLS LAST"
            for name in self.order
        )
        if not page and one_file and self.file_order and not self.descending:
            # A day's file is written in this order (the layout contract): no sort, so a
            # download holds a batch in memory, not the day.
            return f"SELECT {columns} FROM {_FILES} {self.where}"
        tail = " LIMIT $limit OFFSET $offset" if page else ""
        return f"SELECT {columns} FROM {_FILES} {self.where} ORDER BY {order}{tail}"

    def count_sql(self) -> str:
        return f"SELECT filename, count(*) FROM {_FILES_NAMED} {self.where} GROUP BY filename"

    def conform(self, table: pa.Table) -> pa.Table:
        return table.select(self.schema.names).cast(self.schema)


def select(
    request: Request, manifest: TableManifest, zone: ZoneInfo, flux: dict[str, Partition]
) -> Selection:
    """Check `request` against the table's manifest (`flux`: days a publish is replacing)."""
    site, table = request.site, request.table
    names = [c.name for c in manifest.columns]
    chosen = check_fields(request.fields or names, names, site, table)
    start, end = request.start, request.end
    low, high = parse_time(start, zone, "start"), parse_time(end, zone, "end")
    if low is not None and high is not None and high < low:
        raise QueryError(
            f"end {end!s} is before start {start!s}; give an end at or after the start"
        )
    timestamp = manifest.columns[0].name
    clauses, params = [], {}
    for key, op, moment in (("start", ">=", low), ("end", "<=", high)):
        if moment is not None:
            clauses.append(f"{quote(timestamp)} {op} ${key}")
            params[key] = moment
    for what, value in (("bank", request.bank), ("rack", request.rack)):
        number = device_id(value, what)
        if number is not None:
            clauses.append(f"{quote(device_column(what, names, site, table))} = ${what}")
            params[what] = number
    keys = [k for k in manifest.keys if k in names]
    order = [timestamp, *keys, *(n for n in chosen if n != timestamp and n not in keys)]
    # A bank/rack filter makes the manifest's per-day counts useless.
    partitions, known, disjoint = _prune(
        manifest, low, high, "bank" in params or "rack" in params, flux
    )
    return Selection(
        site=site,
        table=table,
        schema=_schema(manifest, zone, chosen),
        order=tuple(order),
        where=("WHERE " + " AND ".join(clauses)) if clauses else "",
        params=params,
        partitions=partitions,
        known_rows=known,
        disjoint=disjoint,
        file_order=chosen == names,
        descending=frozenset(keys if request.descending_keys else ()),
    )


def _bounds(partition: Partition) -> tuple[datetime, datetime]:
    return (
        datetime.fromisoformat(partition.min_timestamp),
        datetime.fromisoformat(partition.max_timestamp),
    )


def _prune(
    table: TableManifest,
    start: datetime | None,
    end: datetime | None,
    filtered: bool,
    flux: dict[str, Partition] | None = None,
) -> tuple[tuple[Partition, ...], tuple[int | None, ...], bool]:
    """The partitions meeting [start, end], their known counts, and whether they are disjoint.

    A day in `flux` (its journal entry) may be read in either version: its bounds span
    both, and its rows are counted, not taken from either entry."""
    flux = flux or {}
    chosen, known = [], []
    for partition in sorted(table.partitions, key=lambda p: _bounds(p)[0]):
        if "parquet" not in partition.files:
            continue
        low, high = _bounds(partition)
        other = flux.get(partition.date)
        if other is not None:
            low, high = min(low, _bounds(other)[0]), max(high, _bounds(other)[1])
            filtered_day = True
        else:
            filtered_day = filtered
        if (start is not None and high < start) or (end is not None and low > end):
            continue
        inside = (start is None or start <= low) and (end is None or high <= end)
        chosen.append(partition)
        known.append(partition.rows if inside and not filtered_day else None)
    spans = [_bounds(p) for p in chosen]
    disjoint = all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    return tuple(chosen), tuple(known), disjoint


def _schema(manifest: TableManifest, zone: ZoneInfo, names: list[str]) -> pa.Schema:
    types = {c.name: c.type for c in manifest.columns}
    timestamp = pa.timestamp("us", tz=zone.key)
    return pa.schema(
        [(n, timestamp if types[n] == "timestamp" else _ARROW_TYPES[types[n]]) for n in names]
    )


def page_partitions(
    partitions: list[Partition], counts: list[int], offset: int, size: int
) -> tuple[list[Partition], int]:
    """The partitions holding rows [offset, offset + size), and the offset in the first."""
    chosen, first_offset, seen = [], offset, 0
    for partition, count in zip(partitions, counts, strict=True):
        if seen + count > offset and seen < offset + size:
            if not chosen:
                first_offset = offset - seen
            chosen.append(partition)
        seen += count
    return chosen, first_offset
