"""The published file formats: one module per format, one registry line each below.

    from exporter import formats
    formats.get("csv").content_type        # "text/csv; charset=utf-8"
    formats.names()                        # ("parquet", "csv"): allowed in export.formats

Declaring a format loads no encoding library: `config` reads the names from here.
README.md, Development, "How to add a format", shows the steps.
"""

from __future__ import annotations

from .base import Encoder, Format
from .csv import CSV
from .parquet import PARQUET

__all__ = ["Encoder", "Format", "get", "names", "register", "unregister"]

_REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format; its name must be new."""
    if fmt.name in _REGISTRY:
        raise ValueError(f"format {fmt.name!r} is already registered")
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    del _REGISTRY[name]


def get(name: str) -> Format:
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Every registered format, in registry order: a run's default `export.formats`."""
    return tuple(_REGISTRY)


# One line per format, in the order a run writes them by default (and a manifest lists a
# day's files in).
register(PARQUET)
register(CSV)
