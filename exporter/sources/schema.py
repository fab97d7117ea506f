"""What a source table looks like once published: its columns, types and day fingerprints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from ..config import TableConfig

__all__ = ["SourceColumn", "TableSchema", "fingerprint", "normalise", "published_type"]

# Source type name (lower case, without length/precision) -> published logical type.
_TYPES = {
    "timestamp with time zone": "timestamp",
    "timestamptz": "timestamp",
    "timestamp without time zone": "timestamp",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "date": "date",
    "smallint": "integer",
    "integer": "integer",
    "int": "integer",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "bigint": "integer",
    "real": "float",
    "double precision": "float",
    "float": "float",
    "float4": "float",
    "float8": "float",
    "double": "float",
    "numeric": "float",
    "boolean": "boolean",
    "bool": "boolean",
    "text": "string",
    "character varying": "string",
    "varchar": "string",
    "character": "string",
    "char": "string",
    "json": "string",
    "jsonb": "string",
    "uuid": "string",
}
ARROW = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class SourceColumn:
    name: str
    """Normalised, published name (``rack_status_for_online``)."""
    source: str
    """Name in the database, exactly (``RACK_STATUS_FOR_Online``)."""
    type: str
    """Published logical type: timestamp, integer, float, string, boolean or date."""
    source_type: str
    nullable: bool


@dataclass(frozen=True)
class TableSchema:
    table: TableConfig
    columns: tuple[SourceColumn, ...]
    """Exported columns: timestamp first, then keys, then the rest in source order."""
    naive_timestamp: bool
    """True when the source timestamp column carries no zone."""

    @property
    def timestamp(self) -> SourceColumn:
        return self.columns[0]

    @property
    def keys(self) -> tuple[SourceColumn, ...]:
        return self.columns[1 : 1 + len(self.table.keys)]


def fingerprint(
    rows: int, first: datetime, last: datetime, checksum: str | None = None
) -> dict[str, object]:
    """What identifies a day's source content, as stored in the manifest."""
    found: dict[str, object] = {
        "rows": rows,
        "min": first.astimezone(UTC).isoformat(),
        "max": last.astimezone(UTC).isoformat(),
    }
    if checksum is not None:
        found["checksum"] = checksum
    return found


def normalise(name: str) -> str:
    """Published column name: lower case, runs of other characters folded to ``_``."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "column"


def published_type(source_type: str) -> str:
    """The published logical type of a source type name (lower case); string if unknown."""
    return _TYPES.get(re.sub(r"\(.*\)", "", source_type).strip(), "string")
