"""The configuration as frozen dataclasses: what a run is told (`config` loads and checks it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ColumnDoc", "Config", "DatasetConfig", "S3Options", "SiteConfig", "TableConfig"]


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    """None: boto3's own resolution, which honours AWS_ENDPOINT_URL."""
    region: str | None = None
    path_style: bool = False
    """Address buckets as https://host/bucket (MinIO, Ceph and most S3-compatible stores)."""
    checksum: str = "when_supported"
    """boto3's request_checksum_calculation; 'when_required' for stores that reject CRCs."""
    max_attempts: int = 5
    """Attempts per request, retries in botocore's 'standard' mode (5xx, throttling)."""


@dataclass(frozen=True)
class ColumnDoc:
    """Optional documentation of one source column, shown in the manifest and the site."""

    description: str = ""
    """In English (the data package's language)."""
    unit: str = ""
    description_ko: str = ""
    """The same in Korean."""


@dataclass(frozen=True)
class TableConfig:
    name: str
    """Published table name (``rack``); also the folder name in the layout."""
    source: str
    """Table name in the site database, exactly as spelt there."""
    timestamp: str = "TIMESTAMP"
    """Source column holding the row's instant; partitions are local days of it."""
    keys: tuple[str, ...] = ()
    """Source columns that identify a device (``BANK_ID``, ``RACK_ID``); rows sort by them."""
    include: tuple[str, ...] = ()
    """If set, only these source columns (plus timestamp and keys) are exported."""
    exclude: tuple[str, ...] = ()
    """Source columns never exported."""
    columns: Mapping[str, ColumnDoc] = field(default_factory=dict)
    """Descriptions and units by source column name."""


@dataclass(frozen=True)
class SiteConfig:
    id: str
    """Site identifier in paths and URLs (``1``)."""
    name: str
    timezone: str
    """IANA zone whose local days are the partitions."""
    dsn: str = field(repr=False)
    """``postgresql://...`` or ``sqlite:PATH``; holds a secret, never printed (see `redact`)."""
    tables: tuple[TableConfig, ...]

    def table(self, name: str) -> TableConfig:
        return next(t for t in self.tables if t.name == name)


@dataclass(frozen=True)
class DatasetConfig:
    title: str
    description: str = ""
    license: str = "CC-BY-4.0"
    citation: str = ""
    language: str = "en"
    """Language of the index site: ``en`` or ``ko``."""
    public_base_url: str = ""
    """Where the published tree is served from, used in the site's copy-paste snippets."""
    dictionary: str = ""
    """``builtin`` (the shipped data dictionary of the seed's tables), a TOML file shaped
    like it (relative to the configuration file), or empty for none."""
    dictionary_tables: Mapping[str, Any] = field(default_factory=dict)
    """What the catalog carries of the dictionary: its note and the tables' purposes."""


@dataclass(frozen=True)
class Config:
    path: Path
    dataset: DatasetConfig
    target: str
    """Directory or ``s3://bucket/prefix`` that receives the published tree."""
    formats: tuple[str, ...]
    settle_minutes: int
    """How long after local midnight a day still counts as incomplete (late rows)."""
    lookback_days: int
    """Recent days re-exported on every run, to pick up late rows."""
    sites: tuple[SiteConfig, ...]
    lock_minutes: int = 5
    """The length of a site's lease: renewed while its run is alive, taken over once it
    expires (at once on the same host when the owner process is gone)."""
    s3: S3Options = field(default_factory=S3Options)
    """How to reach an s3:// target (credentials come from the standard AWS chain only)."""

    def site(self, site_id: str) -> SiteConfig:
        return next(s for s in self.sites if s.id == site_id)
