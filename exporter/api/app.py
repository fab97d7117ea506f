"""The ASGI application: the seed's routes under /api/ess/, plus /healthz and /openapi.json.

Routing follows Django's URL patterns (``<int:>`` is ``[0-9]+``, other parts ``[^/]+``) and
its CommonMiddleware: a path that matches no route but would with a trailing slash gets a
301 to the slash form, keeping the query; anything else gets Django's HTML 404 page.
Before a view runs, DRF's order of checks applies: the ``format`` override (only ``json``
and ``api`` exist), then the bearer token if one is required, then the method.

The blocking Dataset work runs in Starlette's thread pool; a download streams from a
thread of its own (the Dataset's DuckDB cursor belongs to the thread that made it), through
a small queue, so a slow client holds back the reading instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import polars as pl
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..errors import ExportError
from . import replies
from .auth import TokenCheck
from .live import LiveDataset
from .logs import AccessLog
from .openapi import openapi_document
from .views import ListRequest, list_page, open_download
from .wire import QueryParams, absolute_url, csv_chunk

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
_END = object()


@dataclass(frozen=True)
class ApiSettings:
    target: str
    refresh_seconds: float = 5.0
    cors_origins: tuple[str, ...] = ("*",)
    token_secret: str | None = None
    """HS256 secret: when set, every /api/ess/ request needs a valid bearer token."""
    max_age: int = 5
    """Cache-Control max-age of data replies: how long a client may reuse one unasked."""


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

    # --- helpers -----------------------------------------------------------------------

    async def _refresh(self) -> None:
        if self.live.due():  # checked here first: most requests need no thread for it
            await run_in_threadpool(self.live.refresh)

    def _etag(self, site: str, request: Request) -> str | None:
        sha = self.live.snapshot.site_shas.get(site)
        if sha is None:
            return None
        raw = f"{sha} {request.url.path}?{request.url.query}".encode()
        return f'W/"{hashlib.sha256(raw).hexdigest()[:32]}"'

    def _cache_headers(self, site: str, request: Request) -> dict[str, str]:
        headers = {"Cache-Control": f"public, max-age={self.settings.max_age}"}
        etag = self._etag(site, request)
        if etag:
            headers["ETag"] = etag
        return headers

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
        headers = self._cache_headers(str(list_request.site), request)
        if headers.get("ETag") and request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        host = request.headers.get("host", "")
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = absolute_url(request.url.scheme, host, request.url.path, query)

        def answer() -> bytes:
            with self.live.lease() as snapshot:
                return list_page(snapshot.dataset, list_request, params, url)

        try:
            body = await run_in_threadpool(answer)
        except ExportError as exc:
            return _server_error(exc)
        return Response(body, 200, {**headers, "Content-Type": replies.JSON})

    async def _download(
        self, request: Request, parts: dict[str, str], params: QueryParams
    ) -> Response:
        site, data_type = int(parts["site"]), parts["type"]
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
        stop = threading.Event()

        def put(item: Any) -> None:
            # Blocks this thread while the queue is full: the client's pace sets the reading's.
            while not stop.is_set():
                future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
                try:
                    future.result(timeout=1.0)
                    return
                except TimeoutError:
                    future.cancel()

        def produce() -> None:
            try:
                with self.live.lease() as snapshot:
                    reader = open_download(snapshot.dataset, site, data_type, params)
                    header = True
                    for batch in reader:
                        if stop.is_set():
                            return
                        if batch.num_rows == 0:
                            continue
                        frame = pl.from_arrow(batch)
                        assert isinstance(frame, pl.DataFrame)
                        put(csv_chunk(frame, header))
                        header = False
                    put(_END)
            except BaseException as exc:  # handed to the request's task, which answers it
                put(exc)

        threading.Thread(target=produce, name="ess-download", daemon=True).start()
        first = await queue.get()
        if isinstance(first, replies.ApiError):
            stop.set()
            return first.response()
        if first is _END:
            stop.set()
            return replies.no_data().response()
        if isinstance(first, ExportError):
            stop.set()
            return _server_error(first)
        if isinstance(first, BaseException):
            stop.set()
            raise first

        async def body() -> AsyncIterator[bytes]:
            try:
                item = first
                while item is not _END:
                    if isinstance(item, BaseException):
                        log.error("download of %s stopped: %s", request.url.path, item)
                        return  # the status is sent: a cut body is all that can tell
                    yield item
                    item = await queue.get()
            finally:
                stop.set()
                while not queue.empty():  # let a producer blocked on a full queue see `stop`
                    queue.get_nowait()

        headers = {
            "Content-Type": "text/csv",
            "Content-Disposition": f"attachment; filename='{data_type}.csv'",
        }
        return StreamingResponse(body(), 200, headers)

    async def healthz(self, request: Request) -> Response:
        await run_in_threadpool(self.live.refresh)
        return replies.json_reply(self.live.health(), 200, {"Cache-Control": "no-store"})

    async def openapi(self, request: Request) -> Response:
        return replies.json_reply(openapi_document(self.live.snapshot.dataset))


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
