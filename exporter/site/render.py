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
import contextlib
import functools
import hashlib
import importlib.resources
import json
import math
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from operator import attrgetter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FunctionLoader, StrictUndefined
from markupsafe import Markup, escape

from ..catalog import DamagedManifest, read_manifest
from ..dictionary import page_texts
from ..errors import PublishError
from ..journal import peek_journal
from ..layout import CATALOG_KEY, DOCUMENT_CACHE, NAME_PATTERN, is_name, journal_key, page_key
from ..manifest import Column, Partition, Published, SiteManifest, TableManifest
from ..memory import gc_paused
from ..storage import Target
from .assets import explorer_key, put_assets
from .preview import Preview, read_previews

__all__ = [
    "HTML_TYPE",
    "TEMPLATES",
    "RangeRequestHandler",
    "SiteChanges",
    "build_site",
    "generator",
    "labels",
    "make_server",
    "put_pages",
    "render_site",
    "rendered_tables",
    "select_pages",
]

# `site_templates/` of the repository, shipped in the package: found the same way in a
# checkout, an editable install and a wheel.
TEMPLATES = importlib.resources.files("exporter.site_templates")
_TEMPLATE_SUFFIXES = (".html", ".css", ".js", ".toml")
HTML_TYPE = "text/html; charset=utf-8"
_RELATIVE = re.compile(r"^(?![/\\])[A-Za-z0-9._~=/%-]+(#[A-Za-z0-9_-]+)?$|^#[A-Za-z0-9_-]+$")
_WEB = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~=%+,@-]*)*$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_NUMERIC = ("integer", "float")


@functools.cache
def labels() -> dict[str, dict[str, Any]]:
    """The site's labels by language (``en``, ``ko``)."""
    return tomllib.loads((TEMPLATES / "labels.toml").read_text(encoding="utf-8"))


def href(value: str) -> str:
    """A link target that cannot run code: a relative path or an http(s) URL, else '#'."""
    return value if _RELATIVE.match(value) or _WEB.match(value) else "#"


def fmt_int(value: int) -> str:
    return f"{value:,}"  # 1,234,567: the same grouping reads right in English and Korean


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
    except (TypeError, ValueError):
        return str(timestamp)
    return clock.isoformat().rstrip("0").rstrip(".") if clock.microsecond else f"{clock:%H:%M:%S}"


def fmt_utc(timestamp: str) -> str:
    try:
        return f"{datetime.fromisoformat(timestamp):%Y-%m-%d %H:%M} UTC"
    except (TypeError, ValueError):
        return str(timestamp)


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


def _check_name(kind: str, name: object, where: str) -> str:
    if not is_name(name):
        raise PublishError(
            f"{where}: invalid {kind} name {name!r} (must match {NAME_PATTERN.pattern}); "
            "re-export the site with --rebuild"
        )
    return name


def _checked(manifest: SiteManifest, site: str) -> SiteManifest:
    """Re-check what a manifest on a target says before it reaches a path or a link.

    Returns it with each table's partitions in date order.
    """
    where = f"sites/{site}/manifest.json"
    if _check_name("site", manifest.site, where) != _check_name("site", site, "catalog.json"):
        raise PublishError(f"{where} describes site {manifest.site!r}; re-export with --rebuild")
    tables = {}
    for name, table in manifest.tables.items():
        _check_name("table", name, where)
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


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """Compiling the templates costs ~45 ms a run; jinja's own cache (a private folder in
    the temporary directory, checked against each template's source) keeps that off every
    run but a machine's first. Without a usable temporary directory, compile each time."""
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=FunctionLoader(_template_source),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        href=href, int=fmt_int, bytes=fmt_bytes, num=fmt_num, time=fmt_time, utc=fmt_utc
    )
    return env


def _template_source(name: str) -> str | None:
    resource = TEMPLATES / name
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def _inline(name: str) -> tuple[Markup, str]:
    """A file of ours to inline, and its CSP source expression."""
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return Markup(text), f"'sha256-{digest}'"


# Pages to render per site: None for all of them, else per table None (the table's page and
# every month's) or the months ("2022-09") whose pages to render with the table's page.
Selection = dict[str, dict[str, set[str] | None] | None]
RECENT_DAYS = 31  # a table's page charts this many last days; a month's page, its month


def render_site(
    catalog: dict[str, Any],
    manifests: dict[str, SiteManifest],
    only: Selection | None = None,
    previews: dict[tuple[str, str], Preview] | None = None,
) -> dict[str, bytes]:
    """The pages of the index: key (``sites/1/rack/index.html``) -> HTML bytes.

    Every page, or the landing page plus those `only` selects: a run renders the pages its
    changes touch, so that adding a day costs the same after a year as after a week.
    `previews` are the first rows of tables (`read_previews`), shown on their pages.
    """
    with gc_paused():
        return _render(catalog, manifests, only, previews or {})


def rendered_tables(
    manifests: dict[str, SiteManifest], only: Selection | None
) -> list[tuple[str, str]]:
    """The (site, table) pages `render_site` renders for `only`."""
    found = []
    for site, manifest in manifests.items():
        if only is not None and site not in only:
            continue
        chosen = only.get(site) if only is not None else None
        found += [(site, name) for name in manifest.tables if chosen is None or name in chosen]
    return found


def _render(
    catalog: dict[str, Any],
    manifests: dict[str, SiteManifest],
    only: Selection | None,
    previews: dict[tuple[str, str], Preview],
) -> dict[str, bytes]:
    language = str(catalog.get("language"))
    language = language if language in labels() else "en"
    t = labels()[language]
    fields = ("title", "description", "license", "citation", "generated_at", "public_base_url")
    dataset = {k: str(catalog.get(k) or "") for k in fields}
    dataset["title"] = dataset["title"] or "ESS operating data"
    dataset["base"] = dataset["public_base_url"].rstrip("/")
    if not _WEB.match(dataset["base"]):
        dataset["base"] = ""  # the snippets then use the page's own location
    (css, css_hash), (js, js_hash) = _inline("site.css"), _inline("site.js")
    csp = (
        # 'self': the explorer module and its Parquet reader (assets/), which compiles
        # its snappy decoder as WebAssembly; connect-src: it fetches the manifest and files.
        f"default-src 'none'; style-src {css_hash}; script-src {js_hash} 'self' "
        "'wasm-unsafe-eval'; img-src data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'"
    )
    common = {
        "t": t,
        "lang": language,
        "dataset": dataset,
        "css": css,
        "js": js,
        "csp": csp,
        "dictionary": page_texts(catalog, language),
        "explorer": explorer_key(),
    }
    sites = [
        _checked(manifests[entry["site"]], entry["site"])
        for entry in catalog.get("sites", [])
        if entry.get("site") in manifests
    ]
    env = _environment()

    def page(template: str, root: str, **context: Any) -> bytes:
        html = env.get_template(template).render(common, root=root, **context)
        return html.encode("utf-8")

    covered = {m.site: Coverage.of(_partitions(m)) for m in sites}
    pages = {
        "index.html": page(
            "index.html",
            "",
            sites=[(m, covered[m.site]) for m in sites],
            tables=sum(len(m.tables) for m in sites),
            total=Coverage.of(p for m in sites for p in _partitions(m)),
        )
    }
    for m in sites:
        if only is not None and m.site not in only:
            continue
        chosen = only.get(m.site) if only is not None else None
        tables = [
            (name, m.tables[name], Coverage.of(m.tables[name].partitions))
            for name in sorted(m.tables)
        ]
        pages[page_key(m.site)] = page(
            "site.html", "../../", site=m, tables=tables, total=covered[m.site]
        )
        for name, table, coverage in tables:
            if chosen is not None and name not in chosen:
                continue
            months = _months(table, t)
            pages[page_key(m.site, name)] = page(
                "table.html",
                "../../../",
                site=m,
                name=name,
                table=table,
                total=coverage,
                calendars=_calendars(table, t),
                charts=_charts(table.columns, table.keys, table.partitions[-RECENT_DAYS:], t),
                recent=min(RECENT_DAYS, len(table.partitions)),
                preview=previews.get((m.site, name)),
                months=[(month, title, Coverage.of(days)) for month, title, days in months],
            )
            wanted = chosen.get(name) if chosen is not None else None
            for month, title, days in months:
                if wanted is not None and month not in wanted:
                    continue
                pages[page_key(m.site, name, month)] = page(
                    "month.html",
                    "../../../../",
                    site=m,
                    name=name,
                    title=title,
                    days=days,
                    total=Coverage.of(days),
                    charts=_charts(table.columns, table.keys, days, t),
                )
    return pages


def build_site(target: Target) -> tuple[int, int]:
    """Render the index from the target's catalog and manifests; put the changed pages and
    delete the pages of months and tables no manifest has any more.

    Returns the numbers of pages written and deleted ((0, 0) when nothing changed or nothing
    is published).
    """
    raw = target.get(CATALOG_KEY)
    if raw is None:
        return 0, 0
    try:
        catalog = json.loads(raw)
        entries = [entry["site"] for entry in catalog["sites"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(
            f"{target.uri}/{CATALOG_KEY} is not a valid catalog ({exc}); "
            "publish again with ess-export run"
        ) from None
    manifests, damaged = {}, {}
    for site in entries:
        try:
            manifest = read_manifest(target, _check_name("site", site, CATALOG_KEY))
        except DamagedManifest as exc:
            damaged[site] = str(exc)  # its pages stay as they are; the others are rendered
            continue
        journal = peek_journal(target, site)
        if journal is not None and journal.changes:
            # Its files may be either version: the pages wait for the manifest that settles it.
            damaged[site] = (
                f"site {site} has a publish in flux ({journal_key(site)}); finish it with "
                f"`ess-export run --site {site}`, which also renders its pages"
            )
            continue
        if manifest is not None:
            manifests[site] = manifest
    shown = {**catalog, "sites": [e for e in catalog["sites"] if e["site"] not in damaged]}
    # A full render: every other page under sites/ belongs to a month or table that is gone.
    listed = [
        key
        for key in target.list("sites/")
        if key.endswith("/index.html") and key.split("/")[1] not in damaged
    ]
    written, deleted = put_pages(target, shown, manifests, drop=listed)
    if damaged:
        raise PublishError(
            f"wrote {written} page(s) of the other sites; " + next(iter(damaged.values()))
        )
    return written, deleted


@dataclass(frozen=True)
class SiteChanges:
    """What a run changed in a site's manifest: the pages it has to render again, and the
    pages of months (or tables) it emptied, which no render writes any more."""

    before: str | None
    """sha256 of the manifest the run started from (None: the site's first publish)."""
    tables: dict[str, set[str] | None] | None
    """Changed tables: their changed months, or None for all; None: every page of the site."""
    gone: tuple[str, ...] = ()
    """Keys of the pages to delete: months whose last day went, tables that went."""

    @classmethod
    def between(cls, before: Published | None, new: SiteManifest) -> SiteChanges:
        """From the manifest the run started from (None: none yet) to the one it published."""
        old = before.manifest if before else None
        sha256 = before.sha256 if before else None
        if old is None:
            return cls(sha256, None)  # the site's first publish
        tables: dict[str, set[str] | None] = {}
        gone: list[str] = []
        for name in sorted(old.tables.keys() | new.tables.keys()):
            previous, table = old.tables.get(name), new.tables.get(name)
            was = _by_month(previous.partitions) if previous else {}
            now = _by_month(table.partitions) if table else {}
            gone += [page_key(new.site, name, m) for m in sorted(was.keys() - now)]
            if table is None:
                gone.append(page_key(new.site, name))
            elif not previous or (previous.columns, previous.keys) != (table.columns, table.keys):
                tables[name] = None  # a new or reshaped table: all of its pages
            elif months := {m for m in was.keys() | now.keys() if was.get(m) != now.get(m)}:
                tables[name] = months
        if (old.name, old.timezone) != (new.name, new.timezone):
            return cls(sha256, None, tuple(gone))  # shown on every page of the site
        return cls(sha256, tables, tuple(gone))


def _by_month(partitions: Iterable[Partition]) -> dict[str, list[Partition]]:
    """The days grouped by month ("2022-09"), in date order."""
    months: dict[str, list[Partition]] = {}
    for p in sorted(partitions, key=attrgetter("date")):
        months.setdefault(p.date[:7], []).append(p)
    return months


def generator() -> dict[str, str]:
    """What renders the pages, for the catalog: another version re-renders every page."""
    digest = hashlib.sha256()
    files = (f for f in TEMPLATES.iterdir() if f.name.endswith(_TEMPLATE_SUFFIXES))
    bundle = TEMPLATES / "vendor" / "hyparquet.bundle.js"  # the explorer's import
    for path in [*sorted(files, key=lambda f: f.name), bundle]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"name": "ess-export", "site_templates": "sha256:" + digest.hexdigest()}


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


def put_pages(
    target: Target,
    catalog: dict[str, Any],
    manifests: dict[str, SiteManifest],
    only: Selection | None = None,
    drop: Iterable[str] = (),
) -> tuple[int, int]:
    """Render and put the pages (`only` these) whose bytes differ from the target's, then
    delete the `drop` pages this render did not write (after the puts: no page put links to
    them any more). Returns how many pages were written and how many deleted.

    (Sending pages from a thread while the next one renders measured no faster: that
    thread waits for the interpreter lock on every response.)"""
    put_assets(target)  # the scripts the pages load, before any page that loads them
    written = deleted = 0
    previews = read_previews(target, manifests, rendered_tables(manifests, only))
    pages = render_site(catalog, manifests, only, previews)
    for key, html in pages.items():
        info = target.head(key)
        if info is None or info.sha256 != hashlib.sha256(html).hexdigest():
            target.put(key, html, HTML_TYPE, cache_control=DOCUMENT_CACHE)
            written += 1
    for key in sorted(set(drop) - pages.keys()):
        target.delete(key)
        deleted += 1
    return written, deleted


_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Static files, with single byte ranges (RFC 9110 14.2): the "from the web" readers
    (polars, DuckDB, hyparquet, the explorer) read a Parquet file's footer and row groups
    this way. A header of several ranges is ignored (the whole file is sent), as allowed."""

    _span: tuple[int, int] | None = None

    def send_head(self) -> Any:
        self._span = None
        path = self.translate_path(self.path)
        match = _BYTE_RANGE.fullmatch(self.headers.get("Range", "").strip())
        if not match or match.groups() == ("", "") or not Path(path).is_file():
            return super().send_head()
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the caller, as in the base
        except OSError:
            self.send_error(404, "File not found")
            return None
        size = Path(path).stat().st_size
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:  # "bytes=-N": the last N bytes
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            source.close()
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        source.seek(start)
        self._span = (start, end)
        return source

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        if self._span is None:
            return super().copyfile(source, outputfile)
        remaining = self._span[1] - self._span[0] + 1
        while remaining > 0 and (chunk := source.read(min(remaining, 1 << 16))):
            outputfile.write(chunk)
            remaining -= len(chunk)
        return None


def make_server(directory: str | Path, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server over a local publish (``ess-export serve``); port 0 picks a free one."""
    handler = functools.partial(RangeRequestHandler, directory=str(directory))
    return ThreadingHTTPServer((host, port), handler)


def _partitions(manifest: SiteManifest) -> list[Partition]:
    return [p for table in manifest.tables.values() for p in table.partitions]


def _months(table: TableManifest, t: dict[str, Any]) -> list[tuple[str, str, list[Partition]]]:
    """The days grouped by month: ("2022-09", title, partitions)."""
    months = []
    for month, days in _by_month(table.partitions).items():
        title = t["month_title"].format(year=month[:4], month=t["months"][int(month[5:]) - 1])
        months.append((month, title, days))
    return months


# --- SVG charts, built from numbers -------------------------------------------------------

CELL, STEP, LEFT, TOP = 13, 16, 34, 20


def _calendars(table: TableManifest, t: dict[str, Any]) -> list[Markup]:
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


def _charts(
    columns: Iterable[Column], keys: Iterable[str], partitions: Sequence[Partition], t: dict
) -> list[dict[str, Any]]:
    """A min / mean / max chart of `partitions` per numeric measurement column (device keys
    left out)."""
    days = [date.fromisoformat(p.date) for p in partitions]
    xs = _x_positions(days)  # shared by every chart of the page
    stats = [_dict(p.stats) for p in partitions]  # JSON in the manifest: decoded once
    charts = []
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
            charts.append({"column": column, "series": series, "svg": svg})
    return charts


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
