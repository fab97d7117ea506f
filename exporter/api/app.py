"""The ASGI application: the seed's routes under /api/ess/, plus /healthz and /openapi.json.

Routing follows Django's URL patterns (``<int:>`` is ``[0-9]+``, other parts ``[^/]+``) and
its CommonMiddleware: a path that matches no route but would with a trailing slash gets a
301 to the slash form, keeping the query; anything else gets Django's HTML 404 page.
Before a view runs, DRF's order of checks applies: the ``format`` override (only ``json``
and ``api`` exist; ``api`` shows the JSON reply in an HTML page, `browsable`), then the
bearer token if one is required, then the method.

The blocking Dataset work runs in Starlette's thread pool; a download streams from a
thread of its own (`download`). List replies are kept per publish (`freshness`), and a
reply is read from one publish, the one on the target (`settled`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import S3Options
from ..errors import ExportError
from . import replies
from .auth import TokenCheck
from .browsable import as_html
from .download import Downloads
from .freshness import CachedReply, Freshness, ReplyCache, freshness, normalized_query
from .live import LiveDataset, Snapshot
from .logs import AccessLog
from .openapi import openapi_document
from .settled import follow, settled, state, window_days
from .views import ListRequest, download_window, list_page, list_window
from .wire import QueryParams, absolute_url

__all__ = ["ApiSettings", "create_app"]

log = logging.getLogger("exporter.api")

_INT = r"(?P<{}>[0-9]+)"
_PART = r"(?P<{}>[^/]+)"
_SITE = "/api/ess/operating-sites/" + _INT.format("site")
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("bank-list", re.compile(_SITE + "/banks/" + _INT.format("bank") + "/")),
    ("rack-list", re.compile(_SITE + "/banks/" + _INT.format("bank") + "/racks/")),
    ("pcs-list", re.compile(_SITE + "/pcs/")),
    ("etc-list", re.compile(_SITE + "/etc/")),
    (
        "rack-detail",
        re.compile(
            _SITE + "/banks/" + _INT.format("bank") + "/racks/" + _PART.format("rack") + "/"
        ),
    ),
    (
        "download",
        re.compile(
            "/api/ess/download/operating-sites/"
            + _INT.format("site")
            + "/"
            + _PART.format("type")
            + "/"
        ),
    ),
]
Window = tuple[datetime | None, datetime | None]
_ATTEMPTS = 4  # reads of a page whose days a publish keeps replacing, before a 503


@dataclass(frozen=True)
class ApiSettings:
    target: str
    refresh_seconds: float = 5.0
    cors_origins: tuple[str, ...] = ("*",)
    token_secret: str | None = None
    """HS256 secret: when set, every /api/ess/ request needs a valid bearer token."""
    max_age: int = 5
    """Cache-Control max-age of replies that may change (see `freshness`)."""
    reply_cache_bytes: int = 64 * 2**20
    """List replies kept per snapshot, answered again without reading (0: none)."""
    s3: S3Options | None = None
    """How to reach an s3:// target (a configuration's [export.s3]); None: boto3's defaults."""


def _match(path: str) -> tuple[str, dict[str, str]] | None:
    for name, pattern in _ROUTES:
        found = pattern.fullmatch(path)
        if found:
            return name, found.groupdict()
    return None


def _list_request(route: str, parts: dict[str, str]) -> ListRequest:
    site = int(parts["site"])
    bank = int(parts["bank"]) if "bank" in parts else None
    if route == "bank-list":
        return ListRequest("bank", site, bank=bank)
    if route == "rack-list":
        return ListRequest("rack", site, bank=bank)
    if route == "rack-detail":
        return ListRequest("rack", site, bank=bank, rack=parts["rack"])
    if route == "pcs-list":
        return ListRequest("pcs", site, date_message=replies.PCS_DATE_MESSAGE)
    return ListRequest("etc", site)


class Api:
    def __init__(self, settings: ApiSettings, live: LiveDataset) -> None:
        self.settings = settings
        self.live = live
        self.tokens = TokenCheck(settings.token_secret) if settings.token_secret else None
        self.replies = ReplyCache(settings.reply_cache_bytes)
        self.downloads = Downloads(live, _server_error)

    # --- helpers -----------------------------------------------------------------------

    async def _refresh(self) -> None:
        if self.live.due():  # checked here first: most requests need no thread for it
            await run_in_threadpool(self.live.refresh)

    def _fresh(
        self, snapshot: Snapshot, site: int, table: str, window: Window | None, key: str
    ) -> Freshness | None:
        if window is None:
            return None  # refused parameters: the error reply carries no cache headers
        max_age = self.settings.max_age
        return freshness(snapshot.dataset, str(site), table, *window, key, max_age)

    # --- endpoints ---------------------------------------------------------------------

    async def ess(self, request: Request) -> Response:
        path = request.url.path
        found = _match(path)
        if found is None:
            if not path.endswith("/") and _match(path + "/") is not None:
                query = request.scope.get("query_string", b"").decode("latin-1")
                return replies.slash_redirect(path + "/" + (f"?{query}" if query else ""))
            return replies.not_found_html()
        route, parts = found
        params = QueryParams(request.scope.get("query_string", b"").decode("latin-1"))
        reply = await self._route(request, route, parts, params)
        if params.get("format") == "api" and reply.status_code != 304:
            target = request.url.path + (f"?{params.raw}" if params.raw else "")
            return as_html(reply, route, request.method, target)
        return reply

    async def _route(
        self, request: Request, route: str, parts: dict[str, str], params: QueryParams
    ) -> Response:
        try:
            if params.get("format") not in (None, "json", "api"):
                raise replies.format_not_found()
            if self.tokens is not None:
                denied = self.tokens.check(request.headers.get("authorization"))
                if denied is not None:
                    return denied
            if request.method == "OPTIONS":
                return replies.json_reply(
                    replies.options_document(route), 200, {"Allow": replies.ALLOW}
                )
            if request.method not in ("GET", "HEAD"):
                return replies.method_not_allowed(request.method)
            await self._refresh()
            if route == "download":
                return await self._download(request, parts, params)
            return await self._list(request, route, parts, params)
        except replies.ApiError as exc:
            return exc.response()

    async def _list(
        self, request: Request, route: str, parts: dict[str, str], params: QueryParams
    ) -> Response:
        list_request = _list_request(route, parts)
        host = request.headers.get("host", "")
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = absolute_url(request.url.scheme, host, request.url.path, query)
        # next/previous are absolute: the scheme and host are part of the reply.
        key = f"{request.url.scheme}://{host}{request.url.path}?{normalized_query(params.items)}"
        with self.live.lease() as snapshot:
            window = list_window(list_request, params)
            fresh = self._fresh(snapshot, list_request.site, list_request.table, window, key)
            if _not_modified(request, fresh):
                assert fresh is not None
                return Response(status_code=304, headers=fresh.headers)
            cached = self.replies.get(snapshot.catalog_sha256, key)
            if cached is not None:
                return _json_page(cached.body, cached.freshness)
        for _ in range(_ATTEMPTS):
            with self.live.lease() as snapshot:
                fresh = self._fresh(snapshot, list_request.site, list_request.table, window, key)
                try:
                    body = await run_in_threadpool(
                        _settled_page, snapshot, list_request, params, url, window
                    )
                except ExportError as exc:
                    return _server_error(exc)
                if body is not None:
                    if fresh is not None:
                        self.replies.put(snapshot.catalog_sha256, key, CachedReply(body, fresh))
                    return _json_page(body, fresh)
            await run_in_threadpool(self.live.refresh, True)  # the publish may be a new one
        log.warning("%s: its days were republished while it was read, %d times", url, _ATTEMPTS)
        return replies.republishing().response()

    async def _download(
        self, request: Request, parts: dict[str, str], params: QueryParams
    ) -> Response:
        site, data_type = int(parts["site"]), parts["type"]
        key = f"{request.url.path}?{normalized_query(params.items)}"
        with self.live.lease() as snapshot:
            fresh = self._fresh(snapshot, site, data_type, download_window(params), key)
        if _not_modified(request, fresh):
            assert fresh is not None
            return Response(status_code=304, headers=fresh.headers)
        headers = {
            "Content-Type": "text/csv",
            "Content-Disposition": f"attachment; filename='{data_type}.csv'",
            **(fresh.headers if fresh else {}),
        }
        return await self.downloads.reply(request.url.path, site, data_type, params, headers)

    async def healthz(self, request: Request) -> Response:
        await run_in_threadpool(self.live.refresh)
        health = {
            **self.live.health(),
            "reply_cache": self.replies.stats(),
            "downloads_streaming": self.downloads.streaming,
            "process": os.getpid(),
        }
        return replies.json_reply(health, 200, {"Cache-Control": "no-store"})

    async def openapi(self, request: Request) -> Response:
        return replies.json_reply(openapi_document(self.live.snapshot.dataset))


def _settled_page(
    snapshot: Snapshot, request: ListRequest, params: QueryParams, url: str, window: Window | None
) -> bytes | None:
    """The page, read from one publish, the one on the target now (None: a publish replaced
    some of its days meanwhile, or is still replacing them after `settled` waited)."""
    dataset = snapshot.dataset
    site = str(request.site)
    days = window_days(dataset, site, request.table, window) if window else []
    if not days:
        return list_page(dataset, request, params, url)
    token = settled(dataset, site, request.table, days)
    if token is None:
        return None
    follow(dataset, site, request.table, days)
    body = list_page(dataset, request, params, url)
    return body if state(dataset, site, request.table, days) == token else None


def _not_modified(request: Request, fresh: Freshness | None) -> bool:
    """RFC 9110's If-None-Match: a weak comparison against any of the listed tags."""
    given = request.headers.get("if-none-match")
    if given is None or fresh is None or fresh.etag is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in given.split(",")}
    return "*" in tags or fresh.etag in tags


def _json_page(body: bytes, fresh: Freshness | None) -> Response:
    headers = {**(fresh.headers if fresh else {}), "Content-Type": replies.JSON}
    return Response(body, 200, headers)


def _server_error(exc: ExportError) -> Response:
    log.error("%s", exc)
    return replies.json_reply({"detail": "The published data could not be read."}, 503)


def _lifespan(live: LiveDataset) -> Callable[[Starlette], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            live.close()

    return lifespan


def create_app(
    settings: ApiSettings, live: LiveDataset | None = None, access_log: bool = True
) -> Starlette:
    """The application over `settings.target` (or an already open `live` dataset)."""
    live = live or LiveDataset(settings.target, refresh_seconds=settings.refresh_seconds)
    api = Api(settings, live)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "OPTIONS"],
            allow_headers=["Authorization"],
            expose_headers=["Content-Disposition", "ETag"],
        ),
    ]
    if access_log:
        middleware.insert(0, Middleware(AccessLog))
    app = Starlette(
        routes=[
            Route("/healthz", api.healthz, methods=["GET", "HEAD"]),
            Route("/openapi.json", api.openapi, methods=["GET", "HEAD"]),
            Route("/{rest:path}", api.ess, methods=methods),
        ],
        middleware=middleware,
        lifespan=_lifespan(live),
    )
    app.state.live = live
    return app
