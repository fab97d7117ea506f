"""The published metadata: site manifests, the catalog and the Frictionless Data Package.

Dataclasses (and, for the many partitions, msgspec Structs) mirror the JSON exactly (see
DESIGN.md); `to_json` is deterministic so that an unchanged manifest serialises to the same
bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from . import formats
from .config import Config
from .layout import manifest_key

__all__ = [
    "FORMAT_VERSION",
    "Column",
    "FileEntry",
    "Partition",
    "Published",
    "SiteManifest",
    "TableManifest",
    "build_catalog",
    "build_datapackage",
    "encode_stats",
    "parse_site_manifest",
    "schema_hash",
    "site_manifest_json",
    "to_json",
]

FORMAT_VERSION = 1
_FRICTIONLESS_TYPES = {
    "timestamp": "datetime",
    "integer": "integer",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "date": "date",
}


def to_json(document: dict[str, Any], *, compact: bool = False) -> bytes:
    """Deterministic JSON. The large documents (manifests, data package) are compact and
    encoded by msgspec: a year's site manifest takes a few ms instead of json's 37."""
    if compact:
        return msgspec.json.encode(document) + b"\n"
    return (json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def parse_site_manifest(raw: bytes) -> SiteManifest:
    """A site manifest from its JSON; ValueError if it is not one (the message says where).

    msgspec decodes straight into the classes below, checking each field's type, and
    rejects NaN and Infinity literals as malformed JSON. Each partition's statistics stay
    JSON text until asked for: they are most of a manifest's values, and reading a year's
    manifest takes 7 ms instead of 40."""
    return _site_manifest_decoder().decode(raw)


def site_manifest_json(manifest: SiteManifest) -> bytes:
    return to_json(manifest.to_document(), compact=True)


@functools.cache
def _site_manifest_decoder() -> msgspec.json.Decoder[SiteManifest]:
    return msgspec.json.Decoder(SiteManifest)


class FileEntry(msgspec.Struct, frozen=True):
    path: str
    bytes: int
    sha256: str


class Partition(msgspec.Struct, frozen=True):
    """One day of a table. A msgspec Struct: a year's manifest holds thousands."""

    date: str
    rows: int
    complete: bool
    min_timestamp: str
    max_timestamp: str
    duplicates: int
    fingerprint: dict[str, Any]
    stats_json: msgspec.Raw = msgspec.field(name="stats")
    """Per column: min, max, mean, nulls, as the JSON text of the manifest's "stats"."""
    files: dict[str, FileEntry]

    @property
    def stats(self) -> Any:
        """The statistics, decoded (a dict, unless a hand-edited manifest says otherwise)."""
        return msgspec.json.decode(self.stats_json)


def encode_stats(stats: dict[str, dict[str, Any]]) -> msgspec.Raw:
    """A partition's `stats_json` from the statistics computed by the writer."""
    return msgspec.Raw(msgspec.json.encode(stats))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    source: str
    nullable: bool
    description: str = ""
    unit: str = ""
    description_ko: str = ""


def schema_hash(columns: tuple[Column, ...]) -> str:
    """Changes when a column is added, removed, renamed or retyped (not for docs)."""
    shape = [[c.name, c.type, c.source] for c in columns]
    return "sha256:" + hashlib.sha256(json.dumps(shape).encode()).hexdigest()


@dataclass(frozen=True)
class TableManifest:
    columns: tuple[Column, ...]
    keys: tuple[str, ...] = ()
    partitions: tuple[Partition, ...] = ()

    @property
    def schema_hash(self) -> str:
        return schema_hash(self.columns)

    def partition(self, date: str) -> Partition | None:
        return next((p for p in self.partitions if p.date == date), None)

    def with_partitions(self, partitions: list[Partition]) -> TableManifest:
        """Replace the partitions of the same dates, keep the others, sorted by date."""
        merged = {p.date: p for p in self.partitions}
        merged.update({p.date: p for p in partitions})
        return replace(self, partitions=tuple(merged[d] for d in sorted(merged)))

    def to_document(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "keys": list(self.keys),
            "schema_hash": self.schema_hash,
            "partitions": list(self.partitions),
        }


@dataclass(frozen=True)
class SiteManifest:
    site: str
    name: str
    timezone: str
    generated_at: str
    tables: dict[str, TableManifest] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_document(self) -> dict[str, Any]:
        """The manifest as `to_json` writes it (the dataclasses and Structs inside are
        encoded field by field, in order)."""
        return {
            "format_version": self.format_version,
            "site": self.site,
            "name": self.name,
            "timezone": self.timezone,
            "generated_at": self.generated_at,
            "tables": {name: t.to_document() for name, t in sorted(self.tables.items())},
        }

    def same_content(self, other: SiteManifest | None) -> bool:
        """Equal apart from generated_at: publishing it again would change nothing."""
        return other is not None and replace(other, generated_at=self.generated_at) == self


@dataclass(frozen=True)
class Published:
    """A site manifest as it stands on the target, with the sha256 of its bytes there."""

    manifest: SiteManifest
    sha256: str


def build_catalog(
    config: Config,
    manifests: dict[str, Published],
    generated_at: str,
    generator: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The root document: dataset metadata and one entry per published site manifest.

    `generator` names what rendered the pages (a change of templates re-renders them all).
    """
    ds = config.dataset
    return {
        "format_version": FORMAT_VERSION,
        **({"generator": generator} if generator else {}),
        "title": ds.title,
        "description": ds.description,
        "license": ds.license,
        "citation": ds.citation,
        "language": ds.language,
        "public_base_url": ds.public_base_url,
        **({"dictionary": dict(ds.dictionary_tables)} if ds.dictionary_tables else {}),
        "generated_at": generated_at,
        "sites": [
            {
                "site": site,
                "name": published.manifest.name,
                "path": manifest_key(site),
                "sha256": published.sha256,
                "tables": sorted(published.manifest.tables),
            }
            for site, published in sorted(manifests.items())
        ],
    }


def _field_description(column: Column) -> str:
    """English, then Korean when the dictionary has it: 'Rack state of charge / 랙 ...'."""
    text = column.description or f"source column {column.source}"
    return f"{text} / {column.description_ko}" if column.description_ko else text


def build_datapackage(config: Config, manifests: list[SiteManifest]) -> dict[str, Any]:
    """A Frictionless Data Package: one resource per site, table and format."""
    resources = []
    for manifest in sorted(manifests, key=lambda m: m.site):
        for table_name, table in sorted(manifest.tables.items()):
            fields = [
                {
                    "name": c.name,
                    "type": _FRICTIONLESS_TYPES[c.type],
                    "description": _field_description(c),
                    **({"unit": c.unit} if c.unit else {}),
                }
                for c in table.columns
            ]
            table_schema = {"fields": fields, "missingValues": [""]}
            # By format name: the order does not depend on when a format was registered.
            for fmt in sorted(formats.names()):
                paths = [p.files[fmt].path for p in table.partitions if fmt in p.files]
                if not paths:
                    continue
                kind = formats.get(fmt)
                resource: dict[str, Any] = {
                    "name": f"{manifest.site}-{table_name}-{fmt}",
                    "title": f"{manifest.name}: {table_name} ({fmt.upper()})",
                    "path": paths,
                    "format": fmt,
                    "mediatype": kind.mediatype,
                    "schema": table_schema,
                    **kind.resource,
                }
                resources.append(resource)
    ds = config.dataset
    return {
        "profile": "data-package",
        "name": "ess-operating-data",
        "title": ds.title,
        "description": ds.description,
        "licenses": [{"name": ds.license}],
        "resources": resources,
    }
