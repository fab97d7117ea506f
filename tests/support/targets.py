"""Test doubles: real directory targets that record their calls and fail when told to."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from exporter.errors import PublishError
from exporter.storage import LocalTarget, ObjectInfo

# Every call a run makes of its target; the ones that write.
CALLS = frozenset({"put", "put_file", "put_if", "get", "head", "list", "delete"})
WRITES = frozenset({"put", "put_file", "put_if"})


class RecordingTarget(LocalTarget):
    """A directory target that records each call, as ``calls`` ("put KEY"; a call made
    inside another, as put_if's put or head's get, is not a call of its own), and each put,
    as ``puts`` (key, content type, cache_control)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []
        self.puts: list[tuple[str, str, str | None]] = []
        self._depth = 0

    def refuse(self, operation: str, key: str, content_type: str | None) -> bool:
        """Whether to fail this call (recorded already); never, here."""
        return False

    @contextlib.contextmanager
    def _call(self, operation: str, key: str, content_type: str | None = None) -> Iterator[None]:
        if self._depth == 0:
            self.calls.append(f"{operation} {key}")
            if self.refuse(operation, key, content_type):
                if operation == "put":
                    self.puts.append((key, "refused", None))
                raise PublishError(
                    f"injected failure at call {len(self.calls)}: {operation} {key} refused: "
                    "No space left on device"
                )
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def put(self, key: str, data: bytes, content_type: str, **kw: Any) -> None:
        with self._call("put", key, content_type):
            self.puts.append((key, content_type, kw.get("cache_control")))
            super().put(key, data, content_type, **kw)

    def put_file(self, key: str, path: Path, content_type: str, **kw: Any) -> None:
        with self._call("put_file", key, content_type):
            super().put_file(key, path, content_type, **kw)

    def put_if(self, key: str, data: bytes, content_type: str, **kw: Any) -> str | None:
        with self._call("put_if", key, content_type):
            return super().put_if(key, data, content_type, **kw)

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        with self._call("get", key):
            return super().get_tagged(key)

    def head(self, key: str) -> ObjectInfo | None:
        with self._call("head", key):
            return super().head(key)

    def list(self, prefix: str = "") -> list[str]:
        with self._call("list", prefix):
            return super().list(prefix)

    def delete(self, key: str) -> None:
        with self._call("delete", key):
            super().delete(key)


class FailingTarget(RecordingTarget):
    """A recording target that fails, as a PublishError like the real target's, at the
    `fail_at`-th of the calls it counts (and every later one, unless `once`), like a disk
    that fills up, a mount lost or a store refusing a request.

    `counted`: the operations counted (all by default); `content_type`: only the puts of
    this type are counted."""

    def __init__(
        self,
        root: Path,
        fail_at: int | None = None,
        *,
        counted: Collection[str] = CALLS,
        content_type: str | None = None,
        once: bool = False,
    ) -> None:
        super().__init__(root)
        self.fail_at, self.counted, self.content_type, self.once = (
            fail_at,
            counted,
            content_type,
            once,
        )
        self.count = 0

    def refuse(self, operation: str, key: str, content_type: str | None) -> bool:
        if operation not in self.counted:
            return False
        if self.content_type is not None and content_type != self.content_type:
            return False
        self.count += 1
        if self.fail_at is None:
            return False
        return self.count == self.fail_at if self.once else self.count >= self.fail_at
