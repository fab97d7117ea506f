"""The site's charts as inline SVG, built from the manifests' numbers (text in them escaped)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

from ..manifest import Column, Partition, TableManifest

__all__ = ["calendars", "charts"]

_NUMERIC = ("integer", "float")

CELL, STEP, LEFT, TOP = 13, 16, 34, 20


def calendars(table: TableManifest, t: dict[str, Any]) -> list[Markup]:
    """A calendar heatmap (weeks x weekdays) per year, of whole months around the coverage."""
    if not table.partitions:
        return []
    first, last = (date.fromisoformat(table.partitions[i].date) for i in (0, -1))
    by_day = {p.date: p for p in table.partitions}
    peak = max(p.rows for p in table.partitions) or 1
    words = {k: escape(t[k]) for k in ("no_data", "rows_in_day", "partial_short")}
    return [
        _calendar(year, first, last, by_day, peak, words, t)
        for year in range(first.year, last.year + 1)
    ]


def _calendar(
    year: int,
    first: date,
    last: date,
    by_day: dict[str, Partition],
    peak: int,
    words: dict[str, Markup],
    t: dict[str, Any],
) -> Markup:
    start = max(first, date(year, 1, 1)).replace(day=1)
    end = min(last, date(year, 12, 31)).replace(day=28) + timedelta(days=4)
    end -= timedelta(days=end.day)  # the last day of that month
    origin = start - timedelta(days=start.weekday())
    parts = [
        f'<text x="{LEFT - 6}" y="{TOP + row * STEP + CELL - 2}" class="dow">'
        f"{escape(t['weekdays'][row])}</text>"
        for row in (0, 2, 4)
    ]
    size = f'width="{CELL}" height="{CELL}" rx="2"'
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        iso = day.isoformat()
        p = by_day.get(iso)
        x, y = LEFT + (day - origin).days // 7 * STEP, TOP + day.weekday() * STEP
        if day.day == 1:
            month = escape(t["months"][day.month - 1])
            parts.append(f'<text x="{x}" y="{TOP - 7}" class="month">{month}</text>')
        box = f'x="{x}" y="{y}" {size} data-date="{iso}"'
        if p is None:
            kind = "gap" if first <= day <= last else "out"
            parts.append(
                f'<rect class="{kind}" {box}><title>{iso}: {words["no_data"]}</title></rect>'
            )
            continue
        level = f"l{max(1, math.ceil(4 * p.rows / peak))}" + ("" if p.complete else " partial")
        note = "" if p.complete else f" ({words['partial_short']})"
        tip = f"{iso}: {p.rows:,} {words['rows_in_day']}{note}"
        parts.append(
            f'<a href="{iso[:7]}/index.html#d-{iso}"><rect class="{level}" {box}>'
            f"<title>{tip}</title></rect></a>"
        )
    label = escape(f"{t['calendar_label']} {t['year_title'].format(year=year)}")
    width, height = LEFT + ((end - origin).days // 7 + 1) * STEP, TOP + 7 * STEP
    return Markup(
        f'<svg class="calendar" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{label}</title>{"".join(parts)}</svg>'
    )


CHART_WIDTH, CHART_HEIGHT = 320, 120
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 56, 10, 10, 24


def charts(
    columns: Iterable[Column], keys: Iterable[str], partitions: Sequence[Partition], t: dict
) -> list[dict[str, Any]]:
    """A min / mean / max chart of `partitions` per numeric measurement column (device keys
    left out)."""
    days = [date.fromisoformat(p.date) for p in partitions]
    xs = _x_positions(days)  # shared by every chart of the page
    stats = [_dict(p.stats) for p in partitions]  # JSON in the manifest: decoded once
    found = []
    for column in columns:
        if column.type not in _NUMERIC or column.name in keys:
            continue
        series = [
            (p.date, *(_finite(_dict(s.get(column.name)).get(k)) for k in ("min", "mean", "max")))
            for p, s in zip(partitions, stats, strict=True)
        ]
        if any(v is not None for row in series for v in row[1:]):
            label = f"{t['chart_label']} {column.name}" + (
                f" ({column.unit})" if column.unit else ""
            )
            svg = _chart(series, days, xs, label)
            found.append({"column": column, "series": series, "svg": svg})
    return found


def _x_positions(days: list[date]) -> list[str]:
    span = (days[-1] - days[0]).days if days else 0
    plot = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    return [
        f"{CHART_LEFT + plot * ((day - days[0]).days / span if span else 0.5):.1f}" for day in days
    ]


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _finite(value: object) -> float | None:
    """A statistic fit to plot: a finite number (a hand-edited manifest may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _chart(
    series: list[tuple[str, Any, Any, Any]], days: list[date], xs: list[str], label: str
) -> Markup:
    """Daily min-max band and mean line; breaks where a day or a value is missing."""
    width, height, left, right = CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_RIGHT
    top, bottom = CHART_TOP, CHART_BOTTOM
    values = [v for row in series for v in row[1:] if v is not None]
    lo, hi = min(values), max(values)
    if lo == hi:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = max(lo - pad, -sys.float_info.max), min(hi + pad, sys.float_info.max)
    half_span = hi / 2 - lo / 2  # halves: finite even from -1.8e308 to 1.8e308

    def y(v: float) -> str:
        return f"{top + (height - top - bottom) * ((hi / 2 - v / 2) / half_span):.1f}"

    # Points carry their day (to find gaps) and their x, computed once per page.
    bands = _runs([(d, x, row[1], row[3]) for d, x, row in zip(days, xs, series, strict=True)])
    means = _runs([(d, x, row[2]) for d, x, row in zip(days, xs, series, strict=True)])
    parts = [
        f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(v)}" y2="{y(v)}"/>'
        f'<text class="tick" x="{left - 4}" y="{float(y(v)) + 4:.1f}">{format(v, ".3g")}</text>'
        for v in (hi, lo)
    ]
    for run in bands:
        edge = [f"{x},{y(vmax)}" for _, x, _, vmax in run]
        edge += [f"{x},{y(vmin)}" for _, x, vmin, _ in reversed(run)]
        parts.append(f'<polygon class="band" points="{" ".join(edge)}"/>')
    path = " ".join("M" + " L".join(f"{x},{y(v)}" for _, x, v in run) for run in means)
    parts.append(f'<path class="mean" d="{path}"/>')
    if len(days) <= 62:
        dots = (f'<circle cx="{x}" cy="{y(v)}" r="2"/>' for run in means for _, x, v in run)
        parts.append(f'<g class="dots">{"".join(dots)}</g>')
    parts.append(f'<text class="date" x="{left}" y="{height - 6}">{escape(series[0][0])}</text>')
    parts.append(
        f'<text class="date end" x="{width - right}" y="{height - 6}">'
        f"{escape(series[-1][0])}</text>"
    )
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(label)}</title>{"".join(parts)}</svg>'
    )


def _runs(points: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Split (day, x, value, ...) points into runs of consecutive days with every value set."""
    runs: list[list[tuple[Any, ...]]] = []
    previous: date | None = None
    for point in points:
        if None not in point[1:]:
            if not runs or previous is None or (point[0] - previous).days > 1:
                runs.append([])
            runs[-1].append(point)
            previous = point[0]
        else:
            previous = None
    return runs
