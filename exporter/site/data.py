"""What pages show about the data: coverage sums, months, and manifests checked again."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

from ..errors import PublishError
from ..layout import NAME_PATTERN, is_name
from ..manifest import Partition, SiteManifest, TableManifest
from .changes import by_month

__all__ = ["Coverage", "Month", "check_name", "checked", "months", "partitions"]

_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True)
class Coverage:
    """What a set of partitions holds: a table's, a site's or the whole dataset's."""

    days: int
    rows: int
    bytes: int
    first: str
    last: str
    partial: int
    duplicates: int

    @classmethod
    def of(cls, partitions: Iterable[Partition]) -> Coverage:
        # One plain loop: the landing and site pages sum a whole history on every run.
        days: set[str] = set()
        rows = size = partial = duplicates = 0
        for p in partitions:
            days.add(p.date)
            rows += p.rows
            partial += not p.complete
            duplicates += p.duplicates
            for file in p.files.values():
                size += file.bytes
        return cls(
            days=len(days),
            rows=rows,
            bytes=size,
            first=min(days, default=""),
            last=max(days, default=""),
            partial=partial,
            duplicates=duplicates,
        )


class Month(NamedTuple):
    month: str
    """"2022-09"."""
    title: str
    days: list[Partition]


def check_name(kind: str, name: object, where: str) -> str:
    if not is_name(name):
        raise PublishError(
            f"{where}: invalid {kind} name {name!r} (must match {NAME_PATTERN.pattern}); "
            "re-export the site with --rebuild"
        )
    return name


def checked(manifest: SiteManifest, site: str) -> SiteManifest:
    """Re-check what a manifest on a target says before it reaches a path or a link.

    Returns it with each table's partitions in date order.
    """
    where = f"sites/{site}/manifest.json"
    if check_name("site", manifest.site, where) != check_name("site", site, "catalog.json"):
        raise PublishError(f"{where} describes site {manifest.site!r}; re-export with --rebuild")
    tables = {}
    for name, table in manifest.tables.items():
        check_name("table", name, where)
        for p in table.partitions:
            if not _is_day(p.date):
                raise PublishError(f"{where}: table {name} has a partition dated {p.date!r}")
        tables[name] = replace(
            table, partitions=tuple(sorted(table.partitions, key=attrgetter("date")))
        )
    return replace(manifest, tables=tables)


def _is_day(value: object) -> bool:
    try:
        return bool(_DAY.match(str(value))) and bool(date.fromisoformat(str(value)))
    except ValueError:
        return False


def partitions(manifest: SiteManifest) -> list[Partition]:
    return [p for table in manifest.tables.values() for p in table.partitions]


def months(table: TableManifest, t: dict[str, Any]) -> list[Month]:
    """The days grouped by month, with each month's title."""
    return [
        Month(
            month,
            t["month_title"].format(year=month[:4], month=t["months"][int(month[5:]) - 1]),
            days,
        )
        for month, days in by_month(table.partitions).items()
    ]
