"""CSV: RFC 3339 local times, NULL as an empty field, a header in every daily file."""

from __future__ import annotations

from pathlib import Path

from .base import Encoder, Format
from .dialect import CSV_DIALECT

__all__ = ["CSV"]


def _encoder(path: Path) -> Encoder:
    from .csvtext import CsvFile  # polars: loaded by a run that writes, not by config

    return CsvFile(path)


CSV = Format(
    name="csv",
    extension="csv",
    content_type="text/csv; charset=utf-8",
    mediatype="text/csv",
    encoder=_encoder,
    # Every daily file repeats the header, as the Data Package spec expects of a
    # multi-file tabular resource.
    resource={"encoding": "utf-8", "dialect": CSV_DIALECT},
)
