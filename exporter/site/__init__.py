"""The static download index (the pages, their previews and scripts) and its preview server."""

from __future__ import annotations

from .render import (
    HTML_TYPE,
    TEMPLATES,
    RangeRequestHandler,
    SiteChanges,
    build_site,
    fmt_bytes,
    fmt_int,
    fmt_time,
    generator,
    href,
    labels,
    make_server,
    put_pages,
    render_site,
    rendered_tables,
    select_pages,
)

__all__ = [
    "HTML_TYPE",
    "TEMPLATES",
    "RangeRequestHandler",
    "SiteChanges",
    "build_site",
    "fmt_bytes",
    "fmt_int",
    "fmt_time",
    "generator",
    "href",
    "labels",
    "make_server",
    "put_pages",
    "render_site",
    "rendered_tables",
    "select_pages",
]
