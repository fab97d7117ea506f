"""What a published file format declares: its names, its data-package entry, its encoder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # declaring a format loads no encoding library
    import pyarrow as pa

__all__ = ["Encoder", "Format"]


class Encoder(Protocol):
    """Writes one day's file from its row groups, on a thread of its own."""

    def write(self, group: pa.Table) -> None:
        """Append one row group (sorted; the timestamp column in the site's zone)."""

    def finish(self) -> str:
        """Complete the file and make it durable; its sha256 ("" when nothing was written)."""
        ...


@dataclass(frozen=True)
class Format:
    """One published format. Its files are ``data/<name>/.../<site>_<table>_<date>.<extension>``."""

    name: str
    """As in ``export.formats``, a manifest entry's ``files`` and the data package."""
    extension: str
    content_type: str
    """The Content-Type a store serves the files with."""
    mediatype: str
    """The data package's ``mediatype``."""
    encoder: Callable[[Path], Encoder]
    """Opens the encoder of one file at the given path."""
    resource: Mapping[str, Any] = field(default_factory=dict)
    """Further fields of the format's data-package resources (after the schema)."""
