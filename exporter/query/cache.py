"""A verified local cache of a remote root's published files, for the query helper.

DuckDB cannot read s3:// or https:// here (no httpfs download), so the query helper fetches
the Parquet files a query needs through the root's reader into this cache and reads them
locally. Layout::

    <cache dir>/<root slug>-<hash of root URI>/<published path with the sha256 in the name>

so a file republished with new content gets a new name (the old one is never read again),
and two roots never share a file. A file is used only after its bytes hashed to the sha256
the manifest gives, once per process; a corrupt cached copy is fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import PublishError
from ..layout import key_parts
from ..manifest import FileEntry
from ..storage import Reader, file_sha256, write_atomically

__all__ = ["CACHE_ENV", "ChecksumMismatch", "FileCache", "default_cache_dir", "safe_parts"]

CACHE_ENV = "ESS_EXPORT_CACHE"


def default_cache_dir() -> Path:
    """``$ESS_EXPORT_CACHE``, else ``$XDG_CACHE_HOME/ess-export``, else ``~/.cache/ess-export``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ess-export"


class ChecksumMismatch(Exception):
    """A fetched file does not hash to its manifest entry (the caller re-reads the manifest)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _slug(uri: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", uri).strip("_")[:60]
    return f"{readable}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


def safe_parts(key: str) -> list[str]:
    """A manifest path as path parts; refuses anything that could leave its root folder."""
    parts = key_parts(key)
    if parts is None or key.startswith("/"):
        raise PublishError(f"the manifest names an unsafe path {key!r}; run `ess-export verify`")
    return parts


class FileCache:
    """Published files of one remote root, fetched on demand and verified by sha256."""

    def __init__(self, root_uri: str, directory: str | os.PathLike[str] | None = None) -> None:
        base = Path(directory) if directory is not None else default_cache_dir()
        self.directory = base / _slug(root_uri)
        self.fetched: list[str] = []
        """Keys fetched from the root by this cache object, in order (for tests and benches)."""
        # path -> (size, mtime_ns) when this process last hashed it: hash each file once.
        self._verified: dict[Path, tuple[int, int]] = {}

    def path_for(self, entry: FileEntry) -> Path:
        parts = safe_parts(entry.path)
        stem, dot, suffix = parts[-1].rpartition(".")
        name = f"{stem}.{entry.sha256}.{suffix}" if dot else f"{suffix}.{entry.sha256}"
        return self.directory.joinpath(*parts[:-1], name)

    def local(self, target: Reader, entry: FileEntry, also: Sequence[FileEntry] = ()) -> Path:
        """The verified local copy of `entry`, fetched from `target` if needed.

        `also`: other versions the reader rule accepts under the same key (the publish
        journal's entry of a day being replaced). Raises ChecksumMismatch when the fetched
        bytes match none of them.
        """
        versions = [entry, *also]
        for version in versions:
            path = self.path_for(version)
            if self._known_good(path, version):
                return path
        data = target.get(entry.path)
        self.fetched.append(entry.path)
        if data is None:
            raise PublishError(
                f"{target.url(entry.path)} is named by the manifest but missing; "
                f"run `ess-export verify --target {target.uri}`"
            )
        digest = hashlib.sha256(data).hexdigest()
        match = next((v for v in versions if v.sha256 == digest), None)
        if match is None:
            raise ChecksumMismatch(entry.path)
        path = self.path_for(match)
        self._store(path, data)
        return path

    def _known_good(self, path: Path, entry: FileEntry) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        state = (stat.st_size, stat.st_mtime_ns)
        if self._verified.get(path) == state:
            return True
        if stat.st_size == entry.bytes and file_sha256(path) == entry.sha256:
            self._verified[path] = state
            return True
        return False  # damaged or truncated: fetch it again

    def _store(self, path: Path, data: bytes) -> None:
        try:
            # A concurrent query sees no file or the whole file; a cache needs no fsync.
            write_atomically(path, data, durable=False)
        except OSError as exc:
            raise PublishError(
                f"cannot write the query cache {path}: {exc.strerror}; "
                f"set {CACHE_ENV} to a writable folder"
            ) from None
        stat = path.stat()
        self._verified[path] = (stat.st_size, stat.st_mtime_ns)
        self._drop_old_versions(path)

    def _drop_old_versions(self, path: Path) -> None:
        """Remove earlier versions of the same published file (other sha256 in the name)."""
        stem = path.name.split(".", 1)[0]
        for sibling in path.parent.glob(f"{stem}.*"):
            if sibling != path and not sibling.name.startswith("."):
                with contextlib.suppress(OSError):
                    sibling.unlink()
