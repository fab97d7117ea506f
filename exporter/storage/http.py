"""A published tree behind ``http(s)://``, read-only (queries and verification of a web copy)."""

from __future__ import annotations

import hashlib

from ..errors import PublishError
from .base import ObjectInfo, Reader

__all__ = ["HttpReader"]


class HttpReader(Reader):
    """A published tree behind ``http(s)://``: read-only."""

    def __init__(self, uri: str, timeout: float = 30.0) -> None:
        self.uri = uri.rstrip("/")
        self.timeout = timeout

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        import urllib.request  # ~13 ms that only an http(s):// reader pays

        self.requests += 1
        try:
            with urllib.request.urlopen(self.url(key), timeout=self.timeout) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404):  # static hosts answer 403 for a missing S3 key
                return None
            raise PublishError(f"{self.url(key)}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PublishError(f"{self.url(key)}: cannot connect ({reason})") from None
        return data, hashlib.sha256(data).hexdigest()

    def head(self, key: str) -> ObjectInfo | None:
        found = self.get_tagged(key)
        return None if found is None else ObjectInfo(len(found[0]), found[1], found[1])

    def list(self, prefix: str = "") -> list[str]:
        # A plain web server has no listing: what needs one (verify, a site build) stops here.
        raise self.read_only()

    def read_only(self) -> PublishError:
        return PublishError(f"{self.uri} is read-only over HTTP; publish to a directory or s3://")
