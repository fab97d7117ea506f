"""The site's one jinja2 Environment, its filters, labels and the inlined style and script."""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import re
import tomllib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:  # jinja2 loads only when a page is rendered
    from jinja2 import Environment, FileSystemBytecodeCache

__all__ = [
    "HTML_TYPE",
    "TEMPLATES",
    "TEXT_TYPE",
    "WEB",
    "environment",
    "fmt_bytes",
    "fmt_int",
    "fmt_num",
    "fmt_time",
    "fmt_utc",
    "generator",
    "href",
    "inline",
    "labels",
]

# `site_templates/` of the repository, shipped in the package: found the same way in a
# checkout, an editable install and a wheel.
TEMPLATES = importlib.resources.files("exporter.site_templates")
_TEMPLATE_SUFFIXES = (".html", ".css", ".js", ".toml", ".txt")
HTML_TYPE = "text/html; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
_RELATIVE = re.compile(r"^(?![/\\])[A-Za-z0-9._~=/%-]+(#[A-Za-z0-9_-]+)?$|^#[A-Za-z0-9_-]+$")
WEB = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~=%+,@-]*)*$")


@functools.cache
def labels() -> dict[str, dict[str, Any]]:
    """The site's labels by language (``en``, ``ko``)."""
    return tomllib.loads((TEMPLATES / "labels.toml").read_text(encoding="utf-8"))


def href(value: str) -> str:
    """A link target that cannot run code: a relative path or an http(s) URL, else '#'."""
    return value if _RELATIVE.match(value) or WEB.match(value) else "#"


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


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """Compiling the templates costs ~45 ms a run; jinja's own cache (a private folder in
    the temporary directory, checked against each template's source) keeps that off every
    run but a machine's first. Without a usable temporary directory, compile each time."""
    from jinja2 import FileSystemBytecodeCache

    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


@functools.cache
def environment() -> Environment:
    from jinja2 import Environment, FunctionLoader, StrictUndefined

    env = Environment(
        loader=FunctionLoader(_template_source),
        bytecode_cache=_bytecode_cache(),
        autoescape=_escapes,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        href=href, int=fmt_int, bytes=fmt_bytes, num=fmt_num, time=fmt_time, utc=fmt_utc
    )
    return env


def _escapes(name: str | None) -> bool:
    """HTML-escape every template but the plain-text ones (URL lists of checked paths)."""
    return name is None or not name.endswith(".txt")


def _template_source(name: str) -> str | None:
    resource = TEMPLATES / name
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def inline(name: str) -> tuple[Markup, str]:
    """A file of ours to inline, and its CSP source expression."""
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return Markup(text), f"'sha256-{digest}'"


def generator() -> dict[str, str]:
    """What renders the pages, for the catalog: another version re-renders every page."""
    digest = hashlib.sha256()
    files = (f for f in TEMPLATES.iterdir() if f.name.endswith(_TEMPLATE_SUFFIXES))
    bundle = TEMPLATES / "vendor" / "hyparquet.bundle.js"  # the explorer's import
    for path in [*sorted(files, key=lambda f: f.name), bundle]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"name": "ess-export", "site_templates": "sha256:" + digest.hexdigest()}
