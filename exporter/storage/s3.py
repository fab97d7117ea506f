"""``s3://bucket/prefix`` on AWS S3 or any S3-compatible store, and the one S3 client factory.

One PUT is one object swap; files above MULTIPART_THRESHOLD go up in parts. boto3 is
imported only when a client is made or an error is explained.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import S3Options
from ..errors import ConfigError, PublishError
from .base import ObjectInfo, Target, file_sha256

__all__ = ["S3Target", "make_s3_client"]

# Above this size an upload goes in parts (S3's single PUT limit is 5 GB; parts retry alone).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024


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
