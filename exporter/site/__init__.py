"""The static download index: pages rendered from the published documents alone.

`render_site` is pure (catalog + site manifests -> page bytes by key); `build_site` reads
both from a target and puts only the pages whose bytes changed, so a no-op publish uploads
no HTML. Pages depend on nothing else: no clock, no config, no database.

Everything that comes from data is escaped: one jinja2 Environment with autoescape and
StrictUndefined renders `site_templates/`; charts are SVG built from numbers, with any text
in them escaped; links pass the `href` filter, which lets through only relative paths and
http(s) URLs. A Content-Security-Policy naming the hashes of the page's own style and script
keeps anything that slipped through inert.

Modules: `render` (the table of pages), `changes` (what a run touched), `svg` (charts),
`data` (coverage sums, months, manifests checked again), `snippets` (the examples' range and
URL lists), `discovery` (JSON-LD and BibTeX), `templates` (the Environment and its filters),
`build` (putting pages on a target), `preview` (a table's first rows), `assets` (the
explorer's script files).
"""

from __future__ import annotations

from .build import build_site, gone_pages, put_pages
from .changes import Selection, SiteChanges, select_pages
from .render import PAGES, Page, render_site, rendered_tables
from .templates import (
    HTML_TYPE,
    TEMPLATES,
    TEXT_TYPE,
    fmt_bytes,
    fmt_int,
    fmt_num,
    fmt_time,
    fmt_utc,
    generator,
    href,
    labels,
)

__all__ = [
    "HTML_TYPE",
    "PAGES",
    "TEMPLATES",
    "TEXT_TYPE",
    "Page",
    "Selection",
    "SiteChanges",
    "build_site",
    "fmt_bytes",
    "fmt_int",
    "fmt_num",
    "fmt_time",
    "fmt_utc",
    "generator",
    "gone_pages",
    "href",
    "labels",
    "put_pages",
    "render_site",
    "rendered_tables",
    "select_pages",
]
