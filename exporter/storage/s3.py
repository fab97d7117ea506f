"""Publish targets: where the tree of files goes.

A target stores bytes under '/'-separated keys:

    LocalTarget   a directory (temp file + rename: a reader sees the old or the new file)
    S3Target      s3://bucket/prefix through boto3 (one PUT is one object swap)
    HttpTarget    http(s)://base/ of a published tree, read-only (for queries)

Conditional writes (`put_if`) make shared documents safe under concurrent runs: a tag is
the ETag on S3 and the sha256 locally; None means "only if the object does not exist".
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import S3Options
from ..errors import ConfigError, PublishError
from ..layout import key_parts

__all__ = [
    "HttpTarget",
    "file_sha256",
    "write_atomically",
    "LocalTarget",
    "ObjectInfo",
    "S3Options",
    "S3Target",
    "Target",
    "open_target",
]

# Above this size an upload goes in parts (S3's single PUT limit is 5 GB; parts retry alone).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    tag: str
    """ETag on S3, sha256 locally: changes whenever the content does."""
    sha256: str | None = None
    """The content's sha256 when the target recorded it."""


class Target(ABC):
    uri: str
    requests: int = 0
    """Requests sent so far (one per operation for local targets)."""
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
    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and tag, or None if there is none."""

    def get(self, key: str) -> bytes | None:
        found = self.get_tagged(key)
        return None if found is None else found[0]

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

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size and tag without the body, or None if there is no object."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""

    def url(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{key}"


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
        parts = key_parts(key)
        if parts is None:
            raise PublishError(f"refusing unsafe key {key!r}")
        return self.root.joinpath(*parts)

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


class S3Target(Target):
    """``s3://bucket/prefix`` on AWS S3 or any S3-compatible store."""

    def __init__(self, uri: str, client: Any = None, options: S3Options | None = None) -> None:
        parts = urlsplit(uri)
        if not parts.netloc:
            raise ConfigError(f"target {uri!r} names no bucket; use s3://BUCKET/PREFIX")
        self.uri = uri.rstrip("/")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.options = options or S3Options()
        self.client = client or make_s3_client(self.options)
        self.client.meta.events.register("before-send.s3.*", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        self.requests += 1

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, key: str) -> PublishError:
        """One line naming the object, what went wrong and the fix."""
        from botocore import exceptions as boto

        where = f"s3://{self.bucket}/{self._key(key)}"
        endpoint = _without_userinfo(self.client.meta.endpoint_url)
        if isinstance(exc, boto.ClientError):
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            status, code = meta.get("HTTPStatusCode"), error.get("Code", "")
            attempts = meta.get("RetryAttempts", 0) + 1
            if code in _THROTTLED or status == 429:
                return PublishError(
                    f"{where}: {endpoint} is throttling requests ({code}, HTTP {status}) after "
                    f"{attempts} attempt(s); run again later or raise export.s3.max_attempts"
                )
            hint = {
                "NoSuchBucket": "create the bucket or fix the target URI",
                "AccessDenied": "check the credentials and the bucket policy",
                "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID",
                "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
            }.get(code, f"gave up after {attempts} attempt(s)")
            return PublishError(f"{where}: {code or status} ({status}); {hint}")
        if isinstance(exc, boto.NoCredentialsError):
            return PublishError(
                f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or give the machine a role)"
            )
        if isinstance(exc, boto.SSLError):
            reason = _one_line(exc.kwargs.get("error", exc))
            return PublishError(
                f"{where}: TLS with {endpoint} failed ({reason}); check the endpoint's "
                "certificate (AWS_CA_BUNDLE) and scheme (http:// for a plain-HTTP store)"
            )
        if isinstance(exc, boto.ConnectionError):
            return PublishError(
                f"{where}: cannot connect to {endpoint}; check AWS_ENDPOINT_URL or "
                "export.s3.endpoint_url, and that the store is up"
            )
        return PublishError(f"{where}: {_one_line(exc)}; check the endpoint ({endpoint})")

    def _call(self, key: str, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from None

    def _put_args(self, data: bytes, content_type: str, cache_control: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "ContentType": content_type,
            "Metadata": {"sha256": hashlib.sha256(data).hexdigest()},
            # The store rejects a body that was damaged on the way.
            "ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
        }
        if cache_control:
            args["CacheControl"] = cache_control
        return args

    def put(self, key: str, data: bytes, content_type: str, *, cache_control: str = "") -> None:
        self.bytes_sent += len(data)
        args = self._put_args(data, content_type, cache_control)
        self._call(key, "put_object", Key=self._key(key), Body=data, **args)

    def put_file(self, key: str, path: Path, content_type: str, *, cache_control: str = "") -> None:
        size = path.stat().st_size
        if size <= MULTIPART_THRESHOLD:
            super().put_file(key, path, content_type, cache_control=cache_control)
            return
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        self.bytes_sent += size
        args = {"ContentType": content_type, "Metadata": {"sha256": file_sha256(path)}}
        if cache_control:
            args["CacheControl"] = cache_control
        config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK
        )
        try:
            self.client.upload_file(
                str(path), self.bucket, self._key(key), ExtraArgs=args, Config=config
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from None
        path.unlink()

    def put_if(
        self,
        key: str,
        data: bytes,
        content_type: str,
        *,
        tag: str | None,
        cache_control: str = "",
    ) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.bytes_sent += len(data)
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        args = self._put_args(data, content_type, cache_control)
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **args, **condition
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412):  # someone else wrote first: the caller re-reads
                return None
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None
        return str(response["ETag"])

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), response["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None
        return ObjectInfo(
            response["ContentLength"], response["ETag"], response["Metadata"].get("sha256")
        )

    def list(self, prefix: str = "") -> list[str]:
        keys = []
        start = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys += [item["Key"][start:] for item in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call(key, "delete_object", Key=self._key(key))


class HttpTarget(Target):
    """A published tree behind ``http(s)://``: read-only."""

    def __init__(self, uri: str, timeout: float = 30.0) -> None:
        self.uri = uri.rstrip("/")
        self.timeout = timeout

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
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

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise PublishError(f"{self.uri} is read-only over HTTP; publish to a directory or s3://")

    put = put_if = list = delete = _read_only  # type: ignore[assignment]


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


# Error codes S3 and compatible stores answer when asked to slow down.
_THROTTLED = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
# An endpoint that refused or timed out this many times is down or misnamed: say so now,
# not after max_attempts rounds of back-off (retries are for 5xx and throttling).
CONNECT_ATTEMPTS = 2


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _give_up_on_unreachable(
    attempts: int, caught_exception: Exception | None = None, **_: Any
) -> None:
    from botocore.exceptions import ConnectionError, SSLError

    if isinstance(caught_exception, SSLError) or (
        isinstance(caught_exception, ConnectionError) and attempts >= CONNECT_ATTEMPTS
    ):
        raise caught_exception  # ends botocore's retry loop with this error


def make_s3_client(options: S3Options) -> Any:
    """The one place a boto3 S3 client is made: explicit retries, timeouts, addressing."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=options.region,
        retries={"mode": "standard", "total_max_attempts": options.max_attempts},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path" if options.path_style else "auto"},
        request_checksum_calculation=options.checksum,
        response_checksum_validation="when_supported",
    )
    client = boto3.client("s3", endpoint_url=options.endpoint_url, config=config)
    client.meta.events.register_first("needs-retry.s3", _give_up_on_unreachable)
    return client


def open_target(uri: str, s3: S3Options | None = None, client: Any = None) -> Target:
    """The target for a directory, ``s3://bucket/prefix`` or ``http(s)://base``."""
    scheme = urlsplit(uri).scheme
    if scheme == "s3":
        return S3Target(uri, client, s3)
    if scheme in ("http", "https"):
        return HttpTarget(uri)
    if scheme in ("", "file"):
        return LocalTarget(uri.removeprefix("file://"))
    raise ConfigError(
        f"unsupported target {uri!r}; use a directory, s3://BUCKET/PREFIX or https://HOST/PATH"
    )
