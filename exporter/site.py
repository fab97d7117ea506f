"""The static download index: HTML pages rendered from the published documents alone.

`render_site` is pure (catalog + site manifests -> page bytes by key); `build_site` reads
both from a target and puts only the pages whose bytes changed, so a no-op publish uploads
no HTML. Pages depend on nothing else: no clock, no config, no database.

Everything that comes from data is escaped: one jinja2 Environment with autoescape and
StrictUndefined renders `site_templates/`; charts are SVG built here from numbers, with any
text in them escaped; links pass the `href` filter, which lets through only relative paths
and http(s) URLs. A Content-Security-Policy naming the hashes of the page's own style and
script keeps anything that slipped through inert.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from itertools import groupby
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from . import publish
from .config import NAME_PATTERN
from .errors import PublishError
from .manifest import Partition, SiteManifest, TableManifest
from .storage import Target

__all__ = ["HTML_TYPE", "TEMPLATES", "build_site", "labels", "render_site"]

TEMPLATES = Path(__file__).resolve().parent.parent / "site_templates"
HTML_TYPE = "text/html; charset=utf-8"
_RELATIVE = re.compile(r"^(?![/\\])[A-Za-z0-9._~=/%-]+(#[A-Za-z0-9_-]+)?$|^#[A-Za-z0-9_-]+$")
_WEB = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~=%+,@-]*)*$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_NUMERIC = ("integer", "float")


@cache
def labels() -> dict[str, dict[str, Any]]:
    """The site's labels by language (``en``, ``ko``)."""
    return tomllib.loads((TEMPLATES / "labels.toml").read_text(encoding="utf-8"))


def href(value: str) -> str:
    """A link target that cannot run code: a relative path or an http(s) URL, else '#'."""
    return value if _RELATIVE.match(value) or _WEB.match(value) else "#"


def fmt_int(value: int) -> str:
    return f"{value:,}"


def fmt_bytes(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def fmt_num(value: float | None) -> str:
    return "–" if value is None else format(value, ",.6g")


def fmt_time(timestamp: str) -> str:
    """The local wall-clock time of an RFC 3339 timestamp: '23:59:59.5'."""
    try:
        clock = datetime.fromisoformat(timestamp).time()
    except ValueError:
        return timestamp
    return clock.isoformat().rstrip("0").rstrip(".") if clock.microsecond else f"{clock:%H:%M:%S}"


def fmt_utc(timestamp: str) -> str:
    try:
        return f"{datetime.fromisoformat(timestamp):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return timestamp


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
    def of(cls, partitions: list[Partition]) -> Coverage:
        dates = sorted({p.date for p in partitions})
        return cls(
            days=len(dates),
            rows=sum(p.rows for p in partitions),
            bytes=sum(f.bytes for p in partitions for f in p.files.values()),
            first=dates[0] if dates else "",
            last=dates[-1] if dates else "",
            partial=sum(not p.complete for p in partitions),
            duplicates=sum(p.duplicates for p in partitions),
        )


def _checked(manifest: SiteManifest, site: str) -> SiteManifest:
    """Re-check what a manifest on a target says before it reaches a path or a link."""
    where = f"sites/{site}/manifest.json"
    names = [("site", manifest.site)] + [("table", name) for name in manifest.tables]
    for kind, name in [("site", site), *names]:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PublishError(
                f"{where}: invalid {kind} name {name!r} (must match {NAME_PATTERN.pattern}); "
                "re-export the site with --rebuild"
            )
    for name, table in manifest.tables.items():
        for p in table.partitions:
            if not _DAY.match(p.date):
                raise PublishError(f"{where}: table {name} has a partition dated {p.date!r}")
    return manifest


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        href=href, int=fmt_int, bytes=fmt_bytes, num=fmt_num, time=fmt_time, utc=fmt_utc
    )
    return env


def _inline(name: str) -> tuple[Markup, str]:
    """A file of ours to inline, and its CSP source expression."""
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return Markup(text), f"'sha256-{digest}'"


def render_site(catalog: dict[str, Any], manifests: dict[str, SiteManifest]) -> dict[str, bytes]:
    """Every page of the index: key (``sites/1/rack/index.html``) -> HTML bytes."""
    language = catalog.get("language") if catalog.get("language") in labels() else "en"
    t = labels()[language]
    base = str(catalog.get("public_base_url") or "").rstrip("/")
    css, css_hash = _inline("site.css")
    js, js_hash = _inline("site.js")
    dataset = {
        "title": str(catalog.get("title") or "ESS operating data"),
        "description": str(catalog.get("description") or ""),
        "license": str(catalog.get("license") or ""),
        "citation": str(catalog.get("citation") or ""),
        "generated_at": str(catalog.get("generated_at") or ""),
        "base": base if _WEB.match(base) else "",
    }
    sites = [
        _checked(manifests[entry["site"]], entry["site"])
        for entry in catalog.get("sites", [])
        if entry.get("site") in manifests
    ]
    env = _environment()
    common = {
        "t": t,
        "lang": language,
        "dataset": dataset,
        "css": css,
        "js": js,
        "csp": f"default-src 'none'; style-src {css_hash}; script-src {js_hash}; "
        "img-src data:; base-uri 'none'; form-action 'none'",
    }

    def page(template: str, root: str, **context: Any) -> bytes:
        html = env.get_template(template).render(common, root=root, **context)
        return html.encode("utf-8")

    every = [p for m in sites for table in m.tables.values() for p in table.partitions]
    pages = {
        "index.html": page(
            "index.html",
            "",
            sites=[(m, Coverage.of(_partitions(m))) for m in sites],
            tables=sum(len(m.tables) for m in sites),
            total=Coverage.of(every),
        )
    }
    for m in sites:
        tables = [
            (name, m.tables[name], Coverage.of(list(m.tables[name].partitions)))
            for name in sorted(m.tables)
        ]
        pages[f"sites/{m.site}/index.html"] = page(
            "site.html", "../../", site=m, tables=tables, total=Coverage.of(_partitions(m))
        )
        for name, table, coverage in tables:
            pages[f"sites/{m.site}/{name}/index.html"] = page(
                "table.html",
                "../../../",
                site=m,
                name=name,
                table=table,
                total=coverage,
                calendars=_calendars(table, t),
                charts=_charts(table, t),
                months=_months(table, t),
            )
    return pages


def build_site(target: Target) -> int:
    """Render the index from the target's catalog and manifests; put the changed pages.

    Returns the number of pages written (0 when nothing changed or nothing is published).
    """
    raw = target.get(publish.CATALOG_KEY)
    if raw is None:
        return 0
    try:
        catalog = json.loads(raw)
        entries = [entry["site"] for entry in catalog["sites"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(
            f"{target.uri}/{publish.CATALOG_KEY} is not a valid catalog ({exc}); "
            "publish again with ess-export run"
        ) from None
    manifests = {}
    for site in entries:
        if isinstance(site, str) and NAME_PATTERN.match(site):
            manifest = publish.read_manifest(target, site)
            if manifest is not None:
                manifests[site] = manifest
        else:
            raise PublishError(f"{publish.CATALOG_KEY}: invalid site name {site!r}")
    written = 0
    for key, html in render_site(catalog, manifests).items():
        if target.get(key) != html:
            target.put(key, html, HTML_TYPE)
            written += 1
    return written


def _partitions(manifest: SiteManifest) -> list[Partition]:
    return [p for table in manifest.tables.values() for p in table.partitions]


def _months(table: TableManifest, t: dict[str, Any]) -> list[tuple[str, str, list[Partition]]]:
    """The days grouped by month: (id, title, partitions)."""
    months = []
    for month, days in groupby(table.partitions, key=lambda p: p.date[:7]):
        title = t["month_title"].format(year=month[:4], month=t["months"][int(month[5:]) - 1])
        months.append((f"m-{month}", title, list(days)))
    return months


# --- SVG charts, built from numbers -------------------------------------------------------

CELL, STEP, LEFT, TOP = 11, 14, 30, 18


def _calendars(table: TableManifest, t: dict[str, Any]) -> list[Markup]:
    """One calendar heatmap (weeks x weekdays) per year of the table's coverage."""
    if not table.partitions:
        return []
    by_day = {p.date: p for p in table.partitions}
    peak = max(p.rows for p in table.partitions) or 1
    first = date.fromisoformat(table.partitions[0].date)
    last = date.fromisoformat(table.partitions[-1].date)
    return [
        _calendar(max(first, date(year, 1, 1)), min(last, date(year, 12, 31)), by_day, peak, t)
        for year in range(first.year, last.year + 1)
    ]


def _calendar(
    start: date, end: date, by_day: dict[str, Partition], peak: int, t: dict[str, Any]
) -> Markup:
    origin = start - timedelta(days=start.weekday())
    width = LEFT + ((end - origin).days // 7 + 1) * STEP
    parts = []
    for row in (0, 2, 4):
        y = TOP + row * STEP + CELL - 2
        parts.append(
            f'<text x="{LEFT - 5}" y="{y}" class="dow">{escape(t["weekdays"][row])}</text>'
        )
    day = start
    while day <= end:
        x, y = LEFT + (day - origin).days // 7 * STEP, TOP + day.weekday() * STEP
        if day == start or day.day == 1:
            month = escape(t["months"][day.month - 1])
            parts.append(f'<text x="{x}" y="{TOP - 6}" class="month">{month}</text>')
        p, iso = by_day.get(day.isoformat()), day.isoformat()
        box = f'x="{x}" y="{y}" width="{CELL}" height="{CELL}" rx="2" data-date="{iso}"'
        if p is None:
            parts.append(
                f'<rect class="gap" {box}><title>{iso}: {escape(t["no_data"])}</title></rect>'
            )
        else:
            level = max(1, math.ceil(4 * p.rows / peak))
            state = "" if p.complete else f" partial"
            note = "" if p.complete else f" ({escape(t['partial_short'])})"
            tip = f"{iso}: {p.rows:,} {escape(t['rows_in_day'])}{note}"
            parts.append(
                f'<a href="#d-{iso}"><rect class="l{level}{state}" {box}><title>{tip}</title></rect></a>'
            )
        day += timedelta(days=1)
    label = escape(f"{t['calendar_label']} {t['year_title'].format(year=start.year)}")
    height = TOP + 7 * STEP
    return Markup(
        f'<svg class="calendar" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{label}</title>{"".join(parts)}</svg>'
    )


def _charts(table: TableManifest, t: dict[str, Any]) -> list[dict[str, Any]]:
    """A min / mean / max chart per numeric measurement column (device keys left out)."""
    charts = []
    for column in table.columns:
        if column.type not in _NUMERIC or column.name in table.keys:
            continue
        series = [
            (p.date, *(p.stats.get(column.name, {}).get(k) for k in ("min", "mean", "max")))
            for p in table.partitions
        ]
        if any(v is not None for row in series for v in row[1:]):
            label = f"{t['chart_label']} {column.name}" + (
                f" ({column.unit})" if column.unit else ""
            )
            charts.append({"column": column, "series": series, "svg": _chart(series, label)})
    return charts


def _chart(series: list[tuple[str, Any, Any, Any]], label: str) -> Markup:
    width, height, left, right, top, bottom = 320, 120, 52, 10, 10, 24
    values = [v for row in series for v in row[1:] if v is not None]
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - (abs(lo) * 0.05 or 1), hi + (abs(hi) * 0.05 or 1)
    days = [date.fromisoformat(row[0]) for row in series]
    span = max(1, (days[-1] - days[0]).days)

    def xy(day: date, v: float) -> str:
        x = left + (width - left - right) * ((day - days[0]).days / span if len(days) > 1 else 0.5)
        return f"{x:.1f},{top + (height - top - bottom) * (hi - v) / (hi - lo):.1f}"

    bands = _runs([(d, row[1], row[3]) for d, row in zip(days, series, strict=True)])
    means = _runs([(d, row[2]) for d, row in zip(days, series, strict=True)])
    areas = "".join(
        f'<polygon class="band" points="{" ".join(xy(d, vmax) for d, _, vmax in run)} '
        f'{" ".join(xy(d, vmin) for d, vmin, _ in run[::-1])}"/>'
        for run in bands
    )
    path = " ".join("M" + " L".join(xy(d, v) for d, v in run) for run in means)
    points = [xy(d, v) for run in means for d, v in run]
    dots = "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2"/>' for p in points)
    grid = "".join(
        f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y}" y2="{y}"/>'
        f'<text class="tick" x="{left - 4}" y="{float(y) + 4:.1f}">{escape(fmt_num(v))}</text>'
        for v in (hi, lo)
        for y in [xy(days[0], v).split(",")[1]]
    )
    dates = (
        f'<text class="date" x="{left}" y="{height - 6}">{escape(series[0][0])}</text>'
        f'<text class="date end" x="{width - right}" y="{height - 6}">{escape(series[-1][0])}</text>'
    )
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(label)}</title>{grid}{areas}'
        f'<path class="mean" d="{path}"/><g class="dots">{dots if len(points) <= 62 else ""}</g>'
        f"{dates}</svg>"
    )


def _runs(points: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Split (day, value, ...) points where a value is missing or a day is skipped."""
    runs: list[list[tuple[Any, ...]]] = [[]]
    previous: date | None = None
    for point in points:
        day, missing = point[0], None in point[1:]
        if runs[-1] and (missing or previous is None or (day - previous).days > 1):
            runs.append([])
        if not missing:
            runs[-1].append(point)
        previous = day
    return [run for run in runs if run]
