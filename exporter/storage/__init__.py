"""Stores chosen by URI scheme: `open_target` to publish, `open_reader` to read.

    LocalTarget   a directory (temp file + rename: a reader sees the old or the new file)
    S3Target      s3://bucket/prefix through boto3 (one PUT is one object swap)
    HttpReader    http(s)://base/ of a published tree, read-only (for queries)

Each store is a module of this package that imports only `base`; `STORES` below is the one
place that maps a URI scheme to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..config import S3Options
from ..errors import ConfigError
from .base import ObjectInfo, Reader, Target, checked_key, file_sha256, write_atomically
from .http import HttpReader
from .local import LocalTarget
from .s3 import S3Target, make_s3_client

__all__ = [
    "STORES",
    "HttpReader",
    "LocalTarget",
    "ObjectInfo",
    "Reader",
    "S3Options",
    "S3Target",
    "Target",
    "checked_key",
    "file_sha256",
    "make_s3_client",
    "open_reader",
    "open_target",
    "write_atomically",
]

# How a URI's scheme opens its store: (uri, S3 options, S3 client or None) -> store.
Opener = Callable[[str, S3Options | None, Any], Reader]

STORES: dict[str, Opener] = {
    "": lambda uri, s3, client: LocalTarget(uri),
    "file": lambda uri, s3, client: LocalTarget(uri.removeprefix("file://")),
    "s3": lambda uri, s3, client: S3Target(uri, client, s3),
    "http": lambda uri, s3, client: HttpReader(uri),
    "https": lambda uri, s3, client: HttpReader(uri),
}


def open_reader(uri: str, s3: S3Options | None = None, client: Any = None) -> Reader:
    """The store for a directory, ``s3://bucket/prefix`` or ``http(s)://base``, to read."""
    opener = STORES.get(urlsplit(uri).scheme)
    if opener is None:
        raise ConfigError(
            f"unsupported target {uri!r}; use a directory, s3://BUCKET/PREFIX or https://HOST/PATH"
        )
    return opener(uri, s3, client)


def open_target(uri: str, s3: S3Options | None = None, client: Any = None) -> Target:
    """The store for a directory or ``s3://bucket/prefix``, to publish to.

    `s3` and `client` apply to ``s3://`` (the client made by `make_s3_client` otherwise).
    A read-only store (``http(s)://``) is refused in one line."""
    store = open_reader(uri, s3, client)
    if not isinstance(store, Target):
        raise store.read_only()
    return store
