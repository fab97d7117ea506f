"""Running the application under uvicorn (one process, or `workers` processes)."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, replace
from functools import partial

from starlette.applications import Starlette

from ..config import S3Options
from ..errors import ConfigError
from .app import ApiSettings, create_app
from .auth import TOKEN_SECRET_ENV
from .live import LiveDataset, open_dataset

__all__ = ["check_target", "serve", "settings_with_token"]

_SETTINGS_ENV = "ESS_API_SETTINGS"  # how worker processes get the parent's settings


def settings_with_token(settings: ApiSettings, require_token: bool) -> ApiSettings:
    """Settings with the HS256 secret from the environment when a token is required."""
    if not require_token:
        return settings
    secret = os.environ.get(TOKEN_SECRET_ENV, "")
    if not secret:
        raise ConfigError(
            f"--require-token needs the HS256 secret in ${TOKEN_SECRET_ENV}; set it, "
            "or leave out --require-token"
        )
    return replace(settings, token_secret=secret)


def _app(settings: ApiSettings, cache_dir: str | None) -> Starlette:
    _log_access()  # here: each worker process sets up its own logging
    opener = partial(open_dataset, cache_dir=cache_dir, s3=settings.s3)
    live = LiveDataset(settings.target, refresh_seconds=settings.refresh_seconds, opener=opener)
    return create_app(settings, live)


def app_from_environment() -> Starlette:
    """The factory each uvicorn worker process calls."""
    given = json.loads(os.environ[_SETTINGS_ENV])
    cache_dir = given.pop("cache_dir")
    given["cors_origins"] = tuple(given["cors_origins"])
    given["s3"] = S3Options(**given["s3"]) if given["s3"] else None
    return _app(ApiSettings(**given), cache_dir)


def _log_access() -> None:
    access = logging.getLogger("exporter.api.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def check_target(settings: ApiSettings, cache_dir: str | None = None) -> None:
    """Open the target once, so a wrong one fails in one line before anything listens."""
    open_dataset(settings.target, cache_dir=cache_dir, s3=settings.s3).close()


def serve(
    settings: ApiSettings, host: str, port: int, workers: int, cache_dir: str | None = None
) -> None:
    import uvicorn

    options = {"host": host, "port": port, "access_log": False, "log_level": "warning"}
    if workers <= 1:
        uvicorn.run(_app(settings, cache_dir), **options)
        return
    os.environ[_SETTINGS_ENV] = json.dumps({**asdict(settings), "cache_dir": cache_dir})
    uvicorn.run(
        "exporter.api.server:app_from_environment", factory=True, workers=workers, **options
    )
