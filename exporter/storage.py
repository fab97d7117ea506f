"""Publish targets: where the tree of files goes.

A target stores bytes under '/'-separated keys. Every put is atomic: a reader sees the old
object or the new one under a key, never a partial one (temp file + rename locally).
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from .errors import ConfigError, PublishError

__all__ = ["LocalTarget", "Target", "open_target"]


class Target(ABC):
    uri: str

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any previous object in one swap."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""


class LocalTarget(Target):
    """A directory on this machine (``./public``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise PublishError(f"refusing unsafe key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())  # the rename must not outlive the data on a crash
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise PublishError(f"cannot write {path}: {exc.strerror}") from None

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PublishError(f"cannot read {self._path(key)}: {exc.strerror}") from None

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if not Path(k).name.startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def open_target(uri: str) -> Target:
    """The target for a directory path (``s3://`` arrives with the object-storage target)."""
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"unsupported target {uri!r}; give a directory such as ./public")
    return LocalTarget(uri.removeprefix("file://"))
