"""A directory on this machine as a publish target (temp file + rename: readers see old or new)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import PublishError
from .base import ObjectInfo, Target, checked_key, write_atomically

__all__ = ["LocalTarget"]


class LocalTarget(Target):
    """A directory on this machine (``./public``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.uri = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise PublishError(
                f"target {self.root} is a file, not a directory; "
                "give a directory or s3://BUCKET/PREFIX"
            )

    def _failed(self, exc: OSError, verb: str, path: Path) -> PublishError:
        return PublishError(
            f"cannot {verb} {path}: {exc.strerror or exc}; the target must be a writable directory"
        )

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key))

    def staging(self) -> Path:
        # On the target's own file system, so that publishing a file is one rename.
        path = self.root / ".staging"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._failed(exc, "create", path) from None
        return path

    def stored(self, key: str, size: int, sha256: str) -> bool:
        # The file was hashed as it was written, synced, then renamed: a rename cannot
        # change its bytes, so the size confirms it without reading it all back.
        try:
            return self._path(key).stat().st_size == size
        except FileNotFoundError:
            return False

    def put_file(self, key: str, path: Path, content_type: str, *, cache_control: str = "") -> None:
        self.requests += 1
        final = self._path(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())  # the rename must not outlive the data (cheap if synced)
            os.chmod(path, 0o644)
            os.replace(path, final)
        except OSError as exc:
            raise self._failed(exc, "write", final) from None
        self.bytes_sent += final.stat().st_size

    def put(self, key: str, data: bytes, content_type: str, *, cache_control: str = "") -> None:
        self.requests += 1
        self.bytes_sent += len(data)
        path = self._path(key)
        try:
            write_atomically(path, data, durable=True)
        except OSError as exc:
            raise self._failed(exc, "write", path) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise conditional writes between processes on this machine."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".ess-export.lock", "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise self._failed(exc, "write to", self.root) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def put_if(
        self,
        key: str,
        data: bytes,
        content_type: str,
        *,
        tag: str | None,
        cache_control: str = "",
    ) -> str | None:
        with self._locked():
            current = self.head(key)
            if (current.tag if current else None) != tag:
                return None
            self.put(key, data, content_type)
            return hashlib.sha256(data).hexdigest()

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        self.requests += 1
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise PublishError(f"cannot read {self._path(key)}: {exc.strerror}") from None
        return data, hashlib.sha256(data).hexdigest()

    def head(self, key: str) -> ObjectInfo | None:
        found = self.get_tagged(key)
        if found is None:
            return None
        data, tag = found
        return ObjectInfo(len(data), tag, tag)

    def list(self, prefix: str = "") -> list[str]:
        self.requests += 1
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        try:
            keys = [p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()]
        except OSError as exc:
            raise self._failed(exc, "list", base) from None
        return sorted(k for k in keys if not any(part.startswith(".") for part in k.split("/")))

    def delete(self, key: str) -> None:
        self.requests += 1
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._failed(exc, "delete", path) from None
        # Folders exist only for their files (as on S3): drop the ones left empty.
        for folder in path.parents:
            if folder == self.root or not folder.is_relative_to(self.root):
                break
            try:
                folder.rmdir()
            except OSError:
                break
