"""The site's script files: the table pages' explorer (`site_templates/explorer.js` and the
`texts.js` it imports) and its Parquet reader (`site_templates/vendor/hyparquet.bundle.js`,
built by `site_templates/vendor/build.sh`).

They are published under ``assets/`` with their content's hash in the name, so a page always
loads the script it was rendered with and a host may cache them for ever.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources

from ..storage import Target

__all__ = ["ASSET_CACHE", "ASSET_TYPE", "assets", "explorer_key", "put_assets"]

ASSET_TYPE = "text/javascript; charset=utf-8"
ASSET_CACHE = "public, max-age=31536000, immutable"
_TEMPLATES = importlib.resources.files("exporter.site_templates")
_MODULES = ("texts", "explorer")  # the pages' own modules; each imports only those before it


def _named(stem: str, data: bytes) -> str:
    return f"assets/{stem}-{hashlib.sha256(data).hexdigest()[:16]}.js"


@functools.cache
def assets() -> dict[str, bytes]:
    """Key -> bytes of every script file the pages load."""
    bundle = (_TEMPLATES / "vendor" / "hyparquet.bundle.js").read_bytes()
    published = {"hyparquet.bundle.js": _named("hyparquet", bundle)}
    files = {published["hyparquet.bundle.js"]: bundle}
    for stem in _MODULES:
        source = (_TEMPLATES / f"{stem}.js").read_text(encoding="utf-8")
        for name, key in published.items():  # import the hashed name, as published
            source = source.replace(f'"./{name}"', f'"./{key.rsplit("/", 1)[1]}"')
        data = source.encode()
        published[f"{stem}.js"] = _named(stem, data)
        files[published[f"{stem}.js"]] = data
    return files


def explorer_key() -> str:
    return next(key for key in assets() if key.startswith("assets/explorer-"))


def put_assets(target: Target) -> int:
    """Put the script files the target lacks; returns how many were written."""
    written = 0
    for key, data in assets().items():
        info = target.head(key)
        if info is None or info.sha256 != hashlib.sha256(data).hexdigest():
            target.put(key, data, ASSET_TYPE, cache_control=ASSET_CACHE)
            written += 1
    return written
