"""What every store offers: a read-only `Reader`, a writable `Target`, and their shared helpers.

    Reader   get, head, list and url under '/'-separated keys (any published tree)
    Target   a Reader that also writes: put, put_if, put_file, delete, staging

Conditional writes (`put_if`) make shared documents safe under concurrent runs: a tag is
the ETag on S3 and the sha256 locally; None means "only if the object does not exist".
Every failure is one PublishError line naming the object.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..errors import PublishError
from ..layout import key_parts

__all__ = [
    "ObjectInfo",
    "Reader",
    "Target",
    "checked_key",
    "file_sha256",
    "write_atomically",
]


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    tag: str
    """ETag on S3, sha256 locally: changes whenever the content does."""
    sha256: str | None = None
    """The content's sha256 when the target recorded it."""


class Reader(ABC):
    """A published tree to read from: a directory, ``s3://`` or ``http(s)://``."""

    uri: str
    requests: int = 0
    """Requests sent so far (one per operation for local targets)."""

    @abstractmethod
    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and tag, or None if there is none."""

    def get(self, key: str) -> bytes | None:
        found = self.get_tagged(key)
        return None if found is None else found[0]

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size and tag without the body, or None if there is no object."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""

    def url(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{key}"

    def read_only(self) -> PublishError:
        """The error for asking this store to take writes."""
        return PublishError(f"{self.uri} is read-only; publish to a directory or s3://")


class Target(Reader):
    """A store that also takes writes: where a run publishes."""

    bytes_sent: int = 0

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str, *, cache_control: str = "") -> None:
        """Store `data` under `key`, replacing any previous object in one swap."""

    @abstractmethod
    def put_if(
        self,
        key: str,
        data: bytes,
        content_type: str,
        *,
        tag: str | None,
        cache_control: str = "",
    ) -> str | None:
        """Store only if the current object has `tag` (None: only if absent).

        Returns the stored object's new tag, or None (falsy) when the condition failed."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""

    def stored(self, key: str, size: int, sha256: str) -> bool:
        """Whether the object under `key` is the one just put (size and sha256)."""
        info = self.head(key)
        return info is not None and info.size == size and info.sha256 in (None, sha256)

    def staging(self) -> Path:
        """A folder for files being written before they are published."""
        if not hasattr(self, "_staging"):
            self._staging = Path(tempfile.mkdtemp(prefix="ess-export-"))
        return self._staging

    def put_file(self, key: str, path: Path, content_type: str, *, cache_control: str = "") -> None:
        """Publish a finished local file under `key` (the file is consumed)."""
        self.put(key, path.read_bytes(), content_type, cache_control=cache_control)
        path.unlink()


def checked_key(key: str) -> list[str]:
    """`key` as path segments; refuses a key that could leave the store's root."""
    parts = key_parts(key)
    if parts is None:
        raise PublishError(f"refusing unsafe key {key!r}")
    return parts


def write_atomically(path: Path, data: bytes, *, durable: bool) -> None:
    """Write through a temporary file and a rename: readers see the old file or the new one.

    `durable` also syncs the data before the rename, so a crash cannot leave the new name
    pointing at an empty file (needed for published files, not for a cache).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """A file's sha256, read in chunks (files can be larger than memory should hold)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
