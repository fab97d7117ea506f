"""The old API's question as one frozen `Request`, and the parsing of its values and pages."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from ..errors import QueryError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "InvalidPage",
    "Request",
    "page_number",
    "parse_page",
    "parse_page_size",
    "parse_time",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

Moment = str | datetime | date | None


class InvalidPage(QueryError):
    """The page asked for does not exist (not a number, below 1, past the end)."""


@dataclass(frozen=True)
class Request:
    """Which rows of which table: the question `Dataset.query` and `Dataset.rows` answer.

    Values stay as given (ids and times may be text) until `selection.select` checks them
    against the table's manifest, in the order the old service reported problems.
    """

    site: str
    table: str
    bank: int | str | None = None
    rack: int | str | None = None
    fields: tuple[str, ...] = ()
    """Lower-cased, first mention first; empty: every column."""
    start: Moment = None
    end: Moment = None
    descending_keys: bool = False
    """Rows of one timestamp ordered by the table's keys high to low (the seed's order)."""

    @classmethod
    def of(
        cls,
        site: str,
        table: str,
        bank: int | str | None = None,
        rack: int | str | None = None,
        fields: str | Sequence[str] | None = None,
        start: Moment = None,
        end: Moment = None,
        *,
        descending_keys: bool = False,
    ) -> Request:
        """The request for the arguments of `Dataset.query` / `Dataset.rows`."""
        return cls(site, table, bank, rack, _field_list(fields), start, end, descending_keys)


def parse_time(value: Moment, zone: ZoneInfo, what: str) -> datetime | None:
    """An ISO 8601 time as an instant; without an offset it is the site's local time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise QueryError(
                f"{what} {value!r} is not an ISO 8601 time; use e.g. 2022-09-01T10:00:00 "
                "(the site's local time) or 2022-09-01T10:00:00+09:00"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise QueryError(
            f"{what} {value!s} is out of range: give a time from 0001-01-02 to 9999-12-30"
        ) from None


def _whole_number(value: object) -> int | None:
    """A positive whole number given as int or digits, else None ("1.0", "abc", True: None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value) or None
    return None


def parse_page_size(value: int | str | None, maximum: int = MAX_PAGE_SIZE) -> int:
    """The page size; over `maximum` is clamped, like the old service."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    size = _whole_number(value)
    if size is None:
        raise QueryError(
            f"Invalid page size {value!r}: give a whole number from 1 to {maximum} "
            f"(larger sizes are clamped to {maximum})"
        )
    return min(size, maximum)


def parse_page(value: int | str | None) -> int | str:
    """A requested page: a whole number from 1, or 'last' (None: the first page)."""
    if value is None:
        return 1
    if value == "last":
        return "last"
    number = _whole_number(value)
    if number is None:
        raise InvalidPage(
            f"Invalid page. {value!r} is not a page number: give a whole number from 1 (or 'last')"
        )
    return number


def page_number(wanted: int | str, count: int, size: int) -> int:
    """The requested page checked against the result's page count."""
    pages = max(1, math.ceil(count / size))  # page 1 of an empty result is allowed
    if wanted == "last":
        return pages
    assert isinstance(wanted, int)
    if wanted > pages:
        raise InvalidPage(
            f"Invalid page. Page {wanted} is past the end: {count} row(s) make {pages} "
            f"page(s) of {size}"
        )
    return wanted


def device_id(value: int | str | None, what: str) -> int | None:
    """A bank or rack id: a whole number, given as int or text."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    raise QueryError(f"{what} {value!r} is not a whole number; give e.g. --{what} 1")


def check_fields(chosen: Sequence[str], names: list[str], site: str, table: str) -> list[str]:
    """The chosen fields, each a column of the table."""
    for name in chosen:
        if name not in names:
            raise QueryError(
                f"unknown field {name!r} in table {table} of site {site}; "
                f"fields: {', '.join(names)}"
            )
    return list(chosen)


def device_column(what: str, names: list[str], site: str, table: str) -> str:
    """The column a bank or rack filter reads (`bank_id`, `rack_id`)."""
    column = f"{what}_id"
    if column not in names:
        raise QueryError(
            f"table {table} of site {site} has no {column} column, so it cannot be "
            f"filtered by {what}; leave out --{what}"
        )
    return column


def _field_list(fields: str | Sequence[str] | None) -> tuple[str, ...]:
    if fields is None:
        return ()
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    chosen = [f.strip().lower() for f in items if f.strip()]
    return tuple(dict.fromkeys(chosen))  # first mention wins, duplicates dropped
