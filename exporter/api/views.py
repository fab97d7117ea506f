"""The seed service's views, answered from a `Dataset` (blocking: run them in a thread).

Each function follows its Django view step by step, because the order of the checks decides
which error a bad request gets: ``date`` is parsed before the site is looked up, the site
before the rack id, the rack id before ``start-time``/``end-time``, and all of them before
the page. The download parses ``start-time`` and ``end-time`` before it looks at the site
or the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
import pyarrow as pa

from ..query import Dataset, InvalidPage
from . import replies
from .wire import QueryParams, json_order, page_body, page_link, selected_fields

__all__ = [
    "DOWNLOAD_TABLES",
    "PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "ListRequest",
    "download_window",
    "list_page",
    "list_window",
    "open_download",
]

PAGE_SIZE = 1000  # the seed's LargeResultsSetPagination (DRF's example class)
MAX_PAGE_SIZE = 10_000
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
DOWNLOAD_TABLES = ("bank", "rack", "pcs", "etc")
_DAY_END = timedelta(days=1) - timedelta(microseconds=1)  # `date` ends before the next day


@dataclass(frozen=True)
class ListRequest:
    table: str
    site: int
    bank: int | None = None
    rack: str | None = None
    date_message: str = replies.DATE_MESSAGE


def _parse(value: str, fmt: str, message: str) -> datetime:
    try:
        return datetime.strptime(value, fmt)
    except ValueError:
        raise replies.bad_value(message) from None


def _page_size(params: QueryParams) -> int:
    """DRF's `get_page_size`: a positive whole number, cut to the maximum; else the default."""
    text = params.get("page_size")
    if text is None:
        return PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        return PAGE_SIZE
    return min(size, MAX_PAGE_SIZE) if size > 0 else PAGE_SIZE


def _page_number(params: QueryParams) -> int | str:
    """Django's Paginator: 'last', or a whole number from 1 (`int()` of the text)."""
    text = params.get("page")
    if text is None:
        return 1
    if text == "last":
        return "last"
    try:
        number = int(text)
    except ValueError:
        raise replies.invalid_page() from None
    if number < 1:
        raise replies.invalid_page()
    return number


def _site_table(dataset: Dataset, site: int, table: str, error: replies.ApiError) -> str:
    name = str(site)
    if name not in dataset.manifests or table not in dataset.manifests[name].tables:
        if name in dataset.damaged:
            raise replies.ApiError(503, {"detail": "The site's published data is unreadable."})
        raise error
    return name


def _date_window(params: QueryParams, message: str) -> tuple[datetime | None, datetime | None]:
    date_text = params.get("date")
    if date_text is None:
        return None, None
    low = _parse(date_text, "%Y-%m-%d", message)
    return low, low + _DAY_END


def _narrowed(
    params: QueryParams, message: str, low: datetime | None, high: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """`start-time` and `end-time` within the `date` window (both ends inclusive)."""
    for key in ("start-time", "end-time"):
        text = params.get(key)
        if text is not None:
            moment = _parse(text, TIME_FORMAT, message)
            if key == "start-time":
                low = moment if low is None else max(low, moment)
            else:
                high = moment if high is None else min(high, moment)
    return low, high


def list_window(
    request: ListRequest, params: QueryParams
) -> tuple[datetime | None, datetime | None] | None:
    """The naive local window a list request reads (None: ends open), or None if its
    parameters are refused (the view then answers the error)."""
    try:
        low, high = _date_window(params, request.date_message)
        return _narrowed(params, request.date_message, low, high)
    except replies.ApiError:
        return None


def download_window(params: QueryParams) -> tuple[datetime, datetime] | None:
    """The download's window, or None if its parameters are refused."""
    try:
        low, high = _narrowed(params, replies.TIME_MESSAGE, None, None)
    except replies.ApiError:
        return None
    return (low, high) if low is not None and high is not None else None


def list_page(dataset: Dataset, request: ListRequest, params: QueryParams, url: str) -> bytes:
    """One page of a list view as the seed's JSON (raises `ApiError` for its error replies)."""
    low, high = _date_window(params, request.date_message)
    site = _site_table(dataset, request.site, request.table, replies.bad_url())
    rack = None
    if request.rack is not None:
        try:
            rack = int(request.rack)  # Django's IntegerField lookup: int() or ValueError
        except ValueError:
            raise replies.bad_value(request.date_message) from None
    low, high = _narrowed(params, request.date_message, low, high)
    size, wanted = _page_size(params), _page_number(params)
    manifest = dataset.table_manifest(site, request.table)
    types = {c.name: c.type for c in manifest.columns}
    order = json_order([c.name for c in manifest.columns], types)
    fields = selected_fields(params, order)
    if low is not None and high is not None and high < low:  # nothing matches: an empty page
        if wanted not in (1, "last"):
            raise replies.invalid_page()
        return page_body(0, None, None, pl.DataFrame(), fields)
    try:
        page = dataset.query(
            site,
            request.table,
            bank=request.bank,
            rack=rack,
            fields=fields or order[:1],  # counted and paged even when no field is shown
            start=low,
            end=high,
            page=wanted,
            page_size=size,
            max_page_size=MAX_PAGE_SIZE,
            descending_keys=True,  # the seed's rows of one second: racks 8 to 1
        )
    except InvalidPage:
        raise replies.invalid_page() from None
    next_url = page_link(url, page.next) if page.next is not None else None
    previous_url = page_link(url, page.previous) if page.previous is not None else None
    return page_body(page.count, next_url, previous_url, page.rows, fields)


def open_download(
    dataset: Dataset, site: int, data_type: str, params: QueryParams
) -> pa.RecordBatchReader:
    """The download view's checks, then its rows (time order, every column, model order)."""
    moments = []
    for key in ("start-time", "end-time"):
        text = params.get(key)
        if text is None:  # strptime(None) raised TypeError in the seed
            raise replies.missing_times()
        moments.append(_parse(text, TIME_FORMAT, replies.TIME_MESSAGE))
    start, end = moments
    error = replies.bad_url(replies.DATA_TYPE_MESSAGE)
    if data_type not in DOWNLOAD_TABLES:
        raise error
    name = _site_table(dataset, site, data_type, error)
    if end < start:
        raise replies.no_data()
    return dataset.rows(name, data_type, start=start, end=end, descending_keys=True)
