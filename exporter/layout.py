"""The published layout (a contract users rely on): every key and every name rule.

Under a target root::

    catalog.json, datapackage.json, index.html
    sites/<site>/manifest.json, sites/<site>/journal.json, locks/<site>.json
    sites/<site>/index.html, sites/<site>/<table>/index.html,
    sites/<site>/<table>/<YYYY-MM>/index.html, sites/<site>/<table>/<YYYY-MM>/urls-<format>.txt
    data/<format>/site=<site>/table=<table>/date=<YYYY-MM-DD>/<site>_<table>_<YYYY-MM-DD>.<format>

Site and table names match `NAME_PATTERN`, so they are safe as path segments and URL parts.
"""

from __future__ import annotations

import re

__all__ = [
    "CATALOG_KEY",
    "DATAPACKAGE_KEY",
    "DOCUMENT_CACHE",
    "LIST_NAME",
    "NAME_PATTERN",
    "file_key",
    "is_name",
    "journal_key",
    "key_parts",
    "lock_key",
    "manifest_key",
    "page_key",
    "url_list_key",
]

CATALOG_KEY = "catalog.json"
# Documents and pages change on every publish: caches must revalidate.
DOCUMENT_CACHE = "no-cache"
DATAPACKAGE_KEY = "datapackage.json"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
NAME_RULE = "1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"


def is_name(value: object) -> bool:
    """Whether `value` is a valid site or table name."""
    return isinstance(value, str) and NAME_PATTERN.match(value) is not None


def manifest_key(site: str) -> str:
    return f"sites/{site}/manifest.json"


def journal_key(site: str) -> str:
    return f"sites/{site}/journal.json"


def lock_key(site: str) -> str:
    return f"locks/{site}.json"


def file_key(fmt: str, site: str, table: str, date: str, extension: str = "") -> str:
    """The published path of one partition's file (its extension: the format's name)."""
    name = f"{site}_{table}_{date}.{extension or fmt}"
    return f"data/{fmt}/site={site}/table={table}/date={date}/{name}"


def page_key(site: str, *path: str) -> str:
    """Where a site's page is published, or with (table) or (table, month) one of its own."""
    return "/".join(("sites", site, *path, "index.html"))


LIST_NAME = "urls-{fmt}.txt"  # a month's URL list of one format, in the month's folder


def url_list_key(site: str, table: str, month: str, fmt: str) -> str:
    """Where a month's list of its day files of one format is published (for wget -i)."""
    return "/".join(("sites", site, table, month, LIST_NAME.format(fmt=fmt)))


def key_parts(key: str) -> list[str] | None:
    """A key as path segments; None if it could leave its root (empty, absolute, '.', '..')."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        return None
    return parts
