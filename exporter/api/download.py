"""The CSV download, streamed: read in a thread of its own, sent at the client's pace.

The Dataset's DuckDB cursor belongs to the thread that made it, so the rows are read in a
thread that hands CSV chunks to the request's task through a small queue: a slow client
holds back the reading instead of filling memory, and a client that hangs up stops it.
A download of several days is read from one publish (see `settled`); if a publish replaced
one of its days while it streamed, the reply is ended without its last chunk, so the client
sees a broken transfer rather than a file mixing two publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import polars as pl
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from ..errors import ExportError
from . import replies
from .live import LiveDataset
from .settled import settled, state, window_days
from .views import download_window, open_download
from .wire import QueryParams, csv_chunk

__all__ = ["Downloads"]

log = logging.getLogger("exporter.api")

_END = object()
_CUT = object()
_ATTEMPTS = 3  # reads of a download that fails before its first byte (a file replaced)
_CHUNK_ROWS = 8192  # rows of CSV per message: about a megabyte, the queue holds four


class _Republished(Exception):
    """A publish replaced days of the download before its first byte was sent."""


class _Stream(StreamingResponse):
    """A streamed reply that can end without its last chunk (the client sees it cut)."""

    cut = False

    async def stream_response(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            assert isinstance(chunk, bytes)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not self.cut:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class Downloads:
    """Streams downloads from `live`; `streaming` counts the reading threads running."""

    def __init__(self, live: LiveDataset, server_error: Callable[[ExportError], Response]):
        self.live = live
        self.server_error = server_error
        self.streaming = 0
        self._lock = threading.Lock()

    def _days(self, site: str, table: str, params: QueryParams) -> list[str]:
        window = download_window(params)
        if window is None:
            return []
        return window_days(self.live.snapshot.dataset, site, table, window)

    async def reply(
        self, path: str, site: int, data_type: str, params: QueryParams, headers: dict[str, str]
    ) -> Response:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
        stop = threading.Event()
        days = self._days(str(site), data_type, params)

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
            for attempt in range(_ATTEMPTS):
                try:
                    if read() or attempt == _ATTEMPTS - 1:
                        return
                except BaseException as exc:
                    if isinstance(exc, replies.ApiError) or attempt == _ATTEMPTS - 1:
                        # Handed to the request's task, which answers it.
                        put(replies.republishing() if isinstance(exc, _Republished) else exc)
                        return
                self.live.refresh(force=True)  # a publish replaced a file before a byte was sent

        def read() -> bool:
            """Stream the rows (True when done); raises if they fail before a byte is sent."""
            sent = False
            try:
                token = None
                if len(days) > 1:
                    token = settled(self.live.snapshot.dataset, str(site), data_type, days)
                    if token is None:
                        put(replies.republishing())
                        return True
                    self.live.refresh(force=True)  # the publish waited for may be new
                with (
                    self.live.lease() as snapshot,
                    contextlib.closing(
                        open_download(snapshot.dataset, site, data_type, params)
                    ) as reader,
                ):  # closed: a client gone mid-way leaves no open result behind
                    header = True
                    for batch in reader:
                        if stop.is_set():
                            return True
                        if batch.num_rows == 0:
                            continue
                        frame = pl.from_arrow(batch)
                        assert isinstance(frame, pl.DataFrame)
                        for piece in frame.iter_slices(_CHUNK_ROWS):
                            put(csv_chunk(piece, header))
                            header, sent = False, True
                    if token is not None and (
                        state(snapshot.dataset, str(site), data_type, days) != token
                    ):
                        if not sent:
                            raise _Republished()  # nothing sent yet: read it again
                        put(_CUT)
                        return True
                    put(_END)
                    return True
            except replies.ApiError:
                raise
            except BaseException as exc:
                if not sent:
                    raise
                put(exc)  # after the first chunk: the reply is cut
                return True

        def run() -> None:
            try:
                produce()
            finally:
                with self._lock:
                    self.streaming -= 1

        with self._lock:
            self.streaming += 1
        threading.Thread(target=run, name="ess-download", daemon=True).start()
        first = await queue.get()
        if first is _END:
            stop.set()
            return replies.no_data().response()
        if isinstance(first, replies.ApiError):
            stop.set()
            return first.response()
        if isinstance(first, ExportError):
            stop.set()
            return self.server_error(first)
        if isinstance(first, BaseException):
            stop.set()
            raise first

        async def body() -> AsyncIterator[bytes]:
            try:
                item = first
                while item is not _END:
                    if item is _CUT:
                        log.warning("download of %s cut: a publish replaced its days", path)
                        response.cut = True
                        return
                    if isinstance(item, BaseException):
                        log.warning("download of %s cut: %r", path, item)
                        response.cut = True
                        return  # the status is sent: a cut body is all that can tell
                    yield item
                    item = await queue.get()
            finally:
                stop.set()
                while not queue.empty():  # let a producer blocked on a full queue see `stop`
                    queue.get_nowait()

        response = _Stream(body(), 200, headers)
        return response
