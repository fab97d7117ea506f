"""The project's CSV dialect as constants: how times are spelled, how the data package says it."""

from __future__ import annotations

__all__ = ["CSV_DATETIME_FORMAT", "CSV_DIALECT"]

# Readers expect the zone's offset with a colon and no padded fraction (RFC 3339).
CSV_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"
# How the CSV files are written (csvtext.py), as the data package describes it to readers.
CSV_DIALECT = {
    "delimiter": ",",
    "lineTerminator": "\n",
    "quoteChar": '"',
    "doubleQuote": True,
    "header": True,
}
