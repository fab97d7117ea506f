"""Structured access logs: one JSON object per request on the ``exporter.api.access`` logger."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["AccessLog"]

access = logging.getLogger("exporter.api.access")


class AccessLog:
    """ASGI middleware: method, path, query, status, bytes sent, duration, client."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        facts: dict[str, Any] = {"status": None, "bytes": 0}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                facts["status"] = message["status"]
            elif message["type"] == "http.response.body":
                facts["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            record = {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"),
                "status": facts["status"],
                "bytes": facts["bytes"],
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": f"{client[0]}:{client[1]}" if client else None,
            }
            access.info(json.dumps(record, separators=(",", ":")))
