"""The table of pages: each page is one function giving its template and context at a place.

`render_site` is pure (catalog + site manifests -> page bytes by key). A page lives at a
place, the whole dataset, a site, a table or a month, and is rendered once for each place of
its scope; its key is the place's folder (`layout.page_key`) plus its file name. To add a
page, write its function and add one line to `PAGES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple

from ..dictionary import page_texts
from ..layout import LIST_NAME, page_key, url_list_key
from ..manifest import SiteManifest, TableManifest
from ..memory import gc_paused
from .assets import explorer_key
from .changes import Selection
from .data import Coverage, Month, checked, months, partitions
from .discovery import bibtex, dataset_ld
from .preview import Preview
from .snippets import FORMATS, RANGE_DAYS, example, listed
from .svg import calendars, charts
from .templates import WEB, environment, inline, labels

__all__ = [
    "PAGES",
    "RECENT_DAYS",
    "Page",
    "Place",
    "page_keys",
    "render_site",
    "rendered_tables",
]

RECENT_DAYS = 31  # a table's page charts this many last days; a month's page, its month


@dataclass(frozen=True)
class Place:
    """Where a page sits, with what its page function may show: the dataset (`site` None), a
    site, one of its tables (`name`) or a month of that table."""

    t: dict[str, Any]
    dataset: dict[str, str]
    """The catalog's description of the dataset (title, license, ..., base URL)."""
    sites: list[SiteManifest]
    covered: dict[str, Coverage]
    previews: dict[tuple[str, str], Preview]
    site: SiteManifest | None = None
    tables: list[tuple[str, TableManifest, Coverage]] = field(default_factory=list)
    name: str = ""
    table: TableManifest | None = None
    months: list[Month] = field(default_factory=list)
    month: Month | None = None

    @property
    def scope(self) -> str:
        if self.site is None:
            return "dataset"
        return "month" if self.month else "table" if self.name else "site"

    def folder(self) -> str:
        """The key prefix of this place's pages: '', 'sites/1/', 'sites/1/rack/2022-09/'."""
        if self.site is None:
            return ""
        path = [self.name] if self.name else []
        path += [self.month.month] if self.month else []
        return page_key(self.site.site, *path).removesuffix("index.html")


Content = tuple[str, dict[str, Any]]  # a template's name and its context


def landing(at: Place) -> Content:
    every = [p for m in at.sites for p in partitions(m)]
    total = Coverage.of(every)
    formats = {fmt for p in every for fmt in p.files}
    return "index.html", {
        "sites": [(m, at.covered[m.site]) for m in at.sites],
        "tables": sum(len(m.tables) for m in at.sites),
        "total": total,
        "ld": dataset_ld(at.dataset, total.first, total.last, formats),
        "bibtex": bibtex(at.dataset, total.first, total.last),
    }


def site_index(at: Place) -> Content:
    assert at.site is not None
    return "site.html", {"site": at.site, "tables": at.tables, "total": at.covered[at.site.site]}


def table_index(at: Place) -> Content:
    assert at.site is not None and at.table is not None
    site, name, table = at.site.site, at.name, at.table
    return "table.html", {
        "site": at.site,
        "name": name,
        "table": table,
        "total": Coverage.of(table.partitions),
        "calendars": calendars(table, at.t),
        "charts": charts(table.columns, table.keys, table.partitions[-RECENT_DAYS:], at.t),
        "recent": min(RECENT_DAYS, len(table.partitions)),
        "preview": at.previews.get((site, name)),
        "example": example(site, name, table, table.partitions[-RANGE_DAYS:]),
        "months": [
            (m.month, m.title, Coverage.of(m.days), _lists(site, name, m)) for m in at.months
        ],
    }


def month_index(at: Place) -> Content:
    assert at.site is not None and at.table is not None and at.month is not None
    site, name, table, days = at.site.site, at.name, at.table, at.month.days
    return "month.html", {
        "site": at.site,
        "name": name,
        "table": table,
        "title": at.month.title,
        "days": days,
        "total": Coverage.of(days),
        "charts": charts(table.columns, table.keys, days, at.t),
        "example": example(site, name, table, days),
        "lists": _lists(site, name, at.month),
    }


def url_list(fmt: str, at: Place) -> Content | None:
    """A month's files of one format, a path from the root a line (`wget -B BASE/ -i`)."""
    assert at.site is not None and at.month is not None
    paths = listed(at.site.site, at.name, at.month.days, fmt)
    return ("urls.txt", {"paths": paths}) if paths else None


def _lists(site: str, table: str, month: Month) -> list[tuple[str, str]]:
    """(format, key) of a month's URL lists."""
    return [
        (fmt, url_list_key(site, table, month.month, fmt))
        for fmt in FORMATS
        if listed(site, table, month.days, fmt)
    ]


class Page(NamedTuple):
    scope: str
    """"dataset", "site", "table" or "month": the page is rendered once for each such place."""
    name: str
    """Its file name in the place's folder."""
    content: Callable[[Place], Content | None]
    """Its template and context at a place; None: no such page there."""


PAGES: tuple[Page, ...] = (
    Page("dataset", "index.html", landing),
    Page("site", "index.html", site_index),
    Page("table", "index.html", table_index),
    Page("month", "index.html", month_index),
    *(Page("month", LIST_NAME.format(fmt=fmt), partial(url_list, fmt)) for fmt in FORMATS),
)


def page_keys(site: str, table: str, month: str | None) -> list[str]:
    """The keys of the pages of a table (`month` None: its own, not its months') or a month."""
    folder = page_key(site, table, *([month] if month else [])).removesuffix("index.html")
    scope = "month" if month else "table"
    return [folder + page.name for page in PAGES if page.scope == scope]


def render_site(
    catalog: dict[str, Any],
    manifests: dict[str, SiteManifest],
    only: Selection | None = None,
    previews: dict[tuple[str, str], Preview] | None = None,
) -> dict[str, bytes]:
    """The pages of the index: key (``sites/1/rack/index.html``) -> bytes.

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
    common = _common(catalog)
    t = common["t"]
    sites = [
        checked(manifests[entry["site"]], entry["site"])
        for entry in catalog.get("sites", [])
        if entry.get("site") in manifests
    ]
    env = environment()
    pages: dict[str, bytes] = {}

    def render(at: Place) -> None:
        for page in PAGES:
            if page.scope != at.scope or (content := page.content(at)) is None:
                continue
            key = at.folder() + page.name
            template, context = content
            root = "../" * key.count("/")
            pages[key] = env.get_template(template).render(common, root=root, **context).encode()

    covered = {m.site: Coverage.of(partitions(m)) for m in sites}
    dataset = Place(t, common["dataset"], sites, covered, previews)
    render(dataset)
    for m in sites:
        if only is not None and m.site not in only:
            continue
        chosen = only.get(m.site) if only is not None else None
        tables = [(n, m.tables[n], Coverage.of(m.tables[n].partitions)) for n in sorted(m.tables)]
        site = replace(dataset, site=m, tables=tables)
        render(site)
        for name, table, _ in tables:
            if chosen is not None and name not in chosen:
                continue
            place = replace(site, name=name, table=table, months=months(table, t))
            render(place)
            wanted = chosen.get(name) if chosen is not None else None
            for month in place.months:
                if wanted is None or month.month in wanted:
                    render(replace(place, month=month))
    return pages


def _common(catalog: dict[str, Any]) -> dict[str, Any]:
    """What every page shows: labels, the dataset's description, style, script and CSP."""
    language = str(catalog.get("language"))
    language = language if language in labels() else "en"
    fields = ("title", "description", "license", "citation", "generated_at", "public_base_url")
    dataset = {k: str(catalog.get(k) or "") for k in fields}
    dataset["title"] = dataset["title"] or "ESS operating data"
    dataset["base"] = dataset["public_base_url"].rstrip("/")
    if not WEB.match(dataset["base"]):
        dataset["base"] = ""  # the snippets then use the page's own location
    (css, css_hash), (js, js_hash) = inline("site.css"), inline("site.js")
    csp = (
        # 'self': the explorer module and its Parquet reader (assets/), which compiles
        # its snappy decoder as WebAssembly; connect-src: it fetches the manifest and files.
        f"default-src 'none'; style-src {css_hash}; script-src {js_hash} 'self' "
        "'wasm-unsafe-eval'; img-src data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'"
    )
    return {
        "t": labels()[language],
        "lang": language,
        "dataset": dataset,
        "css": css,
        "js": js,
        "csp": csp,
        "dictionary": page_texts(catalog, language),
        "explorer": explorer_key(),
    }
