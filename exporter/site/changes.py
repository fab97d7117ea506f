"""What a run touched: the sites, tables and months whose pages it renders or deletes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from ..manifest import Partition, Published, SiteManifest

__all__ = ["Selection", "SiteChanges", "by_month", "select_pages"]

# Pages to render per site: None for all of them, else per table None (the table's pages and
# every month's) or the months ("2022-09") whose pages to render with the table's.
Selection = dict[str, dict[str, set[str] | None] | None]


@dataclass(frozen=True)
class SiteChanges:
    """What a run changed in a site's manifest: the tables and months whose pages it has to
    render again, and the months (or tables) it emptied, whose pages no render writes any
    more."""

    before: str | None
    """sha256 of the manifest the run started from (None: the site's first publish)."""
    tables: dict[str, set[str] | None] | None
    """Changed tables: their changed months, or None for all; None: every page of the site."""
    gone: tuple[tuple[str, str, str | None], ...] = ()
    """(site, table, month) whose pages to delete: months whose last day went, and
    (site, table, None) for tables that went."""

    @classmethod
    def between(cls, before: Published | None, new: SiteManifest) -> SiteChanges:
        """From the manifest the run started from (None: none yet) to the one it published."""
        old = before.manifest if before else None
        sha256 = before.sha256 if before else None
        if old is None:
            return cls(sha256, None)  # the site's first publish
        tables: dict[str, set[str] | None] = {}
        gone: list[tuple[str, str, str | None]] = []
        for name in sorted(old.tables.keys() | new.tables.keys()):
            previous, table = old.tables.get(name), new.tables.get(name)
            was = by_month(previous.partitions) if previous else {}
            now = by_month(table.partitions) if table else {}
            gone += [(new.site, name, m) for m in sorted(was.keys() - now)]
            if table is None:
                gone.append((new.site, name, None))
            elif not previous or (previous.columns, previous.keys) != (table.columns, table.keys):
                tables[name] = None  # a new or reshaped table: all of its pages
            elif months := {m for m in was.keys() | now.keys() if was.get(m) != now.get(m)}:
                tables[name] = months
        if (old.name, old.timezone) != (new.name, new.timezone):
            return cls(sha256, None, tuple(gone))  # shown on every page of the site
        return cls(sha256, tables, tuple(gone))


def by_month(partitions: Iterable[Partition]) -> dict[str, list[Partition]]:
    """The days grouped by month ("2022-09"), in date order."""
    months: dict[str, list[Partition]] = {}
    for p in sorted(partitions, key=attrgetter("date")):
        months.setdefault(p.date[:7], []).append(p)
    return months


def select_pages(
    catalog: dict[str, Any], previous: dict[str, Any] | None, changes: dict[str, SiteChanges]
) -> Selection | None:
    """The pages to render when `catalog` replaces `previous` after a run's `changes`.

    Everything when the dataset's description or the templates changed. Otherwise, per
    site: this run's changes if the site's pages were current when it started (the
    previous catalog names the manifest it started from), every page if they were not (a
    run stopped between its manifest and its catalog), none if its manifest is unchanged.
    """
    ignored = ("generated_at", "sites")
    if previous is None or {k: v for k, v in previous.items() if k not in ignored} != {
        k: v for k, v in catalog.items() if k not in ignored
    }:
        return None
    with contextlib.suppress(TypeError, KeyError, AttributeError):
        listed = {entry["site"]: entry.get("sha256") for entry in previous["sites"]}
        only: Selection = {}
        for entry in catalog["sites"]:
            site, change = entry["site"], changes.get(entry["site"])
            if change is not None and listed.get(site) == change.before:
                if change.tables is None or change.tables:
                    only[site] = change.tables
            elif listed.get(site) != entry["sha256"]:
                only[site] = None
        return only
    return None  # a damaged previous catalog: render everything
