"""What a page's copy-and-paste examples show: a range of days, its filters and URL lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..formats import names as format_names
from ..layout import file_key, url_list_key
from ..manifest import Partition, TableManifest

__all__ = [
    "FILTERS",
    "FORMATS",
    "RANGE_DAYS",
    "Example",
    "example",
    "listed",
]

# Every published format (the registry), in name order: each month gets a URL list of each.
FORMATS = tuple(sorted(format_names()))
RANGE_DAYS = 7  # a table page's range example: its last days, up to this many
# Device keys the examples filter on, and the `ess-export query` option of each.
FILTERS = {"bank_id": "bank", "rack_id": "rack"}


@dataclass(frozen=True)
class Example:
    first: str
    last: str
    """The range's first and last day (inclusive, local to the site)."""
    days: tuple[Partition, ...]
    filters: tuple[tuple[str, str, int], ...]
    """(column, query option, value): a device that has rows on the range's last day."""
    lists: tuple[tuple[str, str], ...]
    """(format, key) of the URL lists of the range's last month."""


def listed(site: str, table: str, days: Sequence[Partition], fmt: str) -> list[str]:
    """The paths of `days`' files of `fmt`, in date order; only paths where the layout puts
    them (a damaged manifest cannot add a line or a host to a URL list)."""
    return [
        p.files[fmt].path
        for p in days
        if fmt in p.files and p.files[fmt].path == file_key(fmt, site, table, p.date)
    ]


def example(
    site: str, table: str, manifest: TableManifest, days: Sequence[Partition]
) -> Example | None:
    """The examples' range over `days` (in date order): all of them, or a table's last few."""
    if not days:
        return None
    last = days[-1]
    stats = last.stats  # decoded once; a hand-edited manifest may hold anything here
    filters = []
    for column, option in FILTERS.items():
        if column in manifest.keys:
            found = stats.get(column) if isinstance(stats, dict) else None
            low = found.get("min") if isinstance(found, dict) else None
            ok = isinstance(low, int | float) and not isinstance(low, bool) and math.isfinite(low)
            filters.append((column, option, int(low) if ok else 1))
    month = [p for p in days if p.date[:7] == last.date[:7]]
    lists = tuple(
        (fmt, url_list_key(site, table, last.date[:7], fmt))
        for fmt in FORMATS
        if listed(site, table, month, fmt)
    )
    return Example(days[0].date, last.date, tuple(days), tuple(filters), lists)
