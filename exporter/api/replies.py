"""The old service's replies for errors and redirects, byte for byte.

The list views answer a bad value with 400 and ``{"code","exception type","message"}`` (the
code a string, a space in the key, Korean messages as printed in the seed, including the pcs
view's missing "를"); DRF answers a bad page with 404 ``{"detail":"Invalid page."}``; Django
answers a path that matches no route with its HTML 404 page, and a route without its
trailing slash with a 301 to the slash form (APPEND_SLASH).
"""

from __future__ import annotations

import json

from starlette.responses import Response

__all__ = [
    "NOT_FOUND_HTML",
    "ApiError",
    "bad_url",
    "bad_value",
    "invalid_page",
    "json_reply",
    "method_not_allowed",
    "not_found_html",
    "slash_redirect",
]

JSON = "application/json"  # DRF sends no charset
ALLOW = "GET, HEAD, OPTIONS"
NOT_FOUND_HTML = (
    b'\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n'
    b"<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    b"</body>\n</html>\n"
)
DATE_MESSAGE = "올바른 요청 파라미터를 입력하세요.(date)"
PCS_DATE_MESSAGE = "올바른 요청 파라미터 입력하세요.(date)"  # sic: the seed's pcs view
TIME_MESSAGE = "올바른 요청 파라미터를 입력하세요.(time 형식은 'YYYY-MM-DDThh:mm:ss' 입니다.)"
SITE_MESSAGE = "올바른 요청 URL을 입력하세요.(operating_site_id)"
DATA_TYPE_MESSAGE = "올바른 요청 URL을 입력하세요.(data_type)"
MISSING_MESSAGE = "필수 요청 파라미터를 입력하세요.(start-time, end-time)"
NO_DATA_MESSAGE = "해당 데이터를 찾을 수 없습니다."


def json_bytes(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def json_reply(
    document: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(json_bytes(document), status, headers, media_type=JSON)


class ApiError(Exception):
    """A reply the old service gave instead of data."""

    def __init__(self, status: int, document: dict[str, str]) -> None:
        super().__init__(document)
        self.status = status
        self.document = document

    def response(self) -> Response:
        return json_reply(self.document, self.status)


def _coded(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"code": str(status), "exception type": kind, "message": message})


def bad_value(message: str = DATE_MESSAGE) -> ApiError:
    return _coded(400, "Value Error", message)


def bad_url(message: str = SITE_MESSAGE) -> ApiError:
    return _coded(400, "Key Error", message)


def missing_times() -> ApiError:
    return _coded(400, "Type Error", MISSING_MESSAGE)


def no_data() -> ApiError:
    return _coded(404, "Index Error", NO_DATA_MESSAGE)


def invalid_page() -> ApiError:
    return ApiError(404, {"detail": "Invalid page."})


def format_not_found() -> ApiError:
    return ApiError(404, {"detail": "Not found."})


def republishing() -> ApiError:
    """Days a reply reads are being republished for longer than a reply waits."""
    detail = "A publish is replacing the data asked for; ask again in a minute."
    return ApiError(503, {"detail": detail})


def method_not_allowed(method: str) -> Response:
    return json_reply({"detail": f'Method "{method}" not allowed.'}, 405, {"Allow": ALLOW})


def not_found_html() -> Response:
    # Set as a header: Starlette would add a charset to a text/* media type, Django did not.
    return Response(NOT_FOUND_HTML, 404, {"Content-Type": "text/html"})


def slash_redirect(location: str) -> Response:
    headers = {"Location": location, "Content-Type": "text/html; charset=utf-8"}
    return Response(b"", 301, headers)


_VIEW_NAMES = {
    "bank-list": "Ess Bank List",
    "rack-list": "Ess Rack List",
    "rack-detail": "Ess Rack Detail",
    "pcs-list": "Ess Pcs List",
    "etc-list": "Ess Etc List",
    "download": "Ess Operating Data Download",
}


def view_name(route: str) -> str:
    return _VIEW_NAMES[route]


def options_document(route: str) -> dict[str, object]:
    """DRF's SimpleMetadata answer to OPTIONS (the view's name, what it renders and parses)."""
    return {
        "name": _VIEW_NAMES[route],
        "description": "",
        "renders": ["application/json", "text/html"],
        "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
    }
