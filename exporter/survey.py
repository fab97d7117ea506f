"""`make_plan`: each site's schemas, extents and published manifest, planned day by day.

The facts come from the sources and the target; the decisions are `plan.plan_table`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from .catalog import DamagedManifest, read_published
from .config import Config, SiteConfig
from .errors import ConfigError
from .journal import Journal, peek_journal
from .manifest import Column, Published, TableManifest
from .plan import Job, plan_table
from .sources import TableSchema, open_source
from .storage import Reader, open_reader

__all__ = ["Plan", "TablePlan", "make_plan", "select_sites"]


@dataclass(frozen=True)
class TablePlan:
    site: SiteConfig
    schema: TableSchema
    columns: tuple[Column, ...]
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class Plan:
    tables: tuple[TablePlan, ...]
    published: dict[str, Published | None] = field(default_factory=dict)
    """Each planned site's manifest as the plan found it."""
    broken: dict[str, str] = field(default_factory=dict)
    """Sites left out because their manifest cannot be read: why, and what to run."""

    @property
    def jobs(self) -> list[Job]:
        return [job for t in self.tables for job in t.jobs]


def select_sites(config: Config, sites: Sequence[str], tables: Sequence[str]) -> list[SiteConfig]:
    """The configured sites (and tables) named on the command line, or all of them."""
    known = [s.id for s in config.sites]
    for site in sites:
        if site not in known:
            raise ConfigError(f"unknown --site {site!r}; configured sites: {', '.join(known)}")
    chosen = [s for s in config.sites if not sites or s.id in sites]
    known_tables = sorted({t.name for s in chosen for t in s.tables})
    for table in tables:
        if table not in known_tables:
            raise ConfigError(
                f"unknown --table {table!r}; tables of the chosen sites: {', '.join(known_tables)}"
            )
    return chosen


def _columns(schema: TableSchema) -> tuple[Column, ...]:
    docs = schema.table.columns
    return tuple(
        Column(
            name=c.name,
            type=c.type,
            source=c.source,
            nullable=c.nullable,
            description=docs[c.source].description if c.source in docs else "",
            unit=docs[c.source].unit if c.source in docs else "",
            description_ko=docs[c.source].description_ko if c.source in docs else "",
        )
        for c in schema.columns
    )


def make_plan(
    config: Config,
    target: Reader | str,
    *,
    sites: Sequence[str] = (),
    tables: Sequence[str] = (),
    since: date | None = None,
    until: date | None = None,
    rebuild: bool = False,
    full_check: bool = False,
    now: datetime | None = None,
    pending: dict[str, Journal | None] | None = None,
) -> Plan:
    """Discover schemas, extents (and fingerprints), then decide purely what each table needs.

    `pending`: each site's journal, whose unfinished days join the plan (read here when
    not given). `target` is a store or its URI (opened with the config's S3 options).
    """
    if isinstance(target, str):
        target = open_reader(target, config.s3)
    if since and until and since > until:
        raise ConfigError(f"--since {since} is after --until {until}; swap them")
    now = now or datetime.now(UTC)
    planned = []
    found: dict[str, Published | None] = {}
    broken: dict[str, str] = {}
    for site in select_sites(config, sites, tables):
        try:
            found[site.id] = read_published(target, site.id)
        except DamagedManifest as exc:
            if not rebuild:
                broken[site.id] = str(exc)  # the other sites go on
                continue
            found[site.id] = None  # rebuilt from the source as if never published
        published = found[site.id].manifest if found[site.id] else None
        source = open_source(site)
        with source.session():
            source.check()
            journal = pending[site.id] if pending is not None else peek_journal(target, site.id)
            unfinished = journal.pending if journal else []
            for table in site.tables:
                if tables and table.name not in tables:
                    continue
                schema = source.schema(table)
                columns = _columns(schema)
                jobs = plan_table(
                    site=site.id,
                    table=table.name,
                    timezone=site.timezone,
                    extent=source.extent(schema),
                    published=published.tables.get(table.name) if published else None,
                    schema_hash=TableManifest(columns, ()).schema_hash,
                    now=now,
                    settle=timedelta(minutes=config.settle_minutes),
                    lookback_days=config.lookback_days,
                    since=since,
                    until=until,
                    rebuild=rebuild,
                    fingerprints=source.fingerprints(schema) if full_check else None,
                    pending={p.date: p.reason for p in unfinished if p.table == table.name},
                )
                planned.append(TablePlan(site, schema, columns, tuple(jobs)))
    return Plan(tuple(planned), found, broken)
