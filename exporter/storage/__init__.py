"""Publish targets: a directory, ``s3://bucket/prefix`` or ``http(s)://base`` (read-only)."""

from .s3 import (
    HttpTarget,
    LocalTarget,
    ObjectInfo,
    S3Options,
    S3Target,
    Target,
    file_sha256,
    make_s3_client,
    open_target,
    write_atomically,
)

__all__ = [
    "HttpTarget",
    "LocalTarget",
    "ObjectInfo",
    "S3Options",
    "S3Target",
    "Target",
    "file_sha256",
    "make_s3_client",
    "open_target",
    "write_atomically",
]
