"""`?format=api`: the JSON reply as a plain HTML page, where the old service showed DRF's
browsable API (a Bootstrap page with forms, whose CSS it never served: GAPS.md)."""

from __future__ import annotations

import html
import json
from http import HTTPStatus

from starlette.responses import Response

from . import replies

__all__ = ["as_html"]

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
</head>
<body>
  <h1>{title}</h1>
  <p><b>{method}</b> {path}</p>
  <pre><b>HTTP {status} {reason}</b>
<b>Allow:</b> {allow}
<b>Content-Type:</b> application/json
<b>Vary:</b> Accept

{body}</pre>
  <p>The same reply as JSON: leave out <code>format=api</code>.</p>
</body>
</html>
"""


def as_html(reply: Response, route: str, method: str, target: str) -> Response:
    """A JSON reply (data or error) shown in a page; anything else is returned as it is."""
    if reply.headers.get("content-type") != replies.JSON or not isinstance(reply.body, bytes):
        return reply
    document = json.loads(reply.body) if reply.body else None
    text = json.dumps(document, ensure_ascii=False, indent=4)
    page = _PAGE.format(
        title=html.escape(replies.view_name(route)),
        method=html.escape(method),
        path=html.escape(target),
        status=reply.status_code,
        reason=HTTPStatus(reply.status_code).phrase,
        allow=replies.ALLOW,
        body=html.escape(text),
    )
    headers = {k: v for k, v in reply.headers.items() if k.lower() in ("etag", "cache-control")}
    headers["Content-Type"] = "text/html; charset=utf-8"
    headers["Vary"] = "Accept"
    return Response(page.encode(), reply.status_code, headers)
