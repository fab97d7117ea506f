"""The old service's wire format, reproduced byte for byte (see tests/golden/README.md).

The seed service was Django 3.2 + DRF 3.12 + drf-flex-fields 0.9.6. What its clients see,
and what this module rebuilds from published rows:

- query strings parsed like Django's QueryDict (``&`` only, ``+`` is a space, blank values
  kept, ``get`` takes the last value of a repeated key);
- ``fields``/``omit`` with drf-flex-fields' rules (`selected_fields`);
- JSON rows keyed in the serializer's order: the primary key ``timestamp``, then the
  declared JSON fields (every text column: the fault lists), then the model's fields; naive
  local time as ``datetime.isoformat()``; floats as Python's ``repr``; compact, UTF-8;
- DRF's absolute ``next``/``previous`` links (`page_link`);
- the CSV download as ``csv.DictWriter`` over ``QuerySet.values()`` wrote it (`csv_chunk`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import polars as pl

__all__ = [
    "absolute_url",
    "QueryParams",
    "csv_chunk",
    "json_order",
    "page_body",
    "page_link",
    "selected_fields",
]

_WILDCARDS = {"~all", "*"}
# Django's escape_uri_path and iri_to_uri keep these as they are.
_PATH_SAFE = "/:@&+$,-_.!~*'()"
_QUERY_SAFE = "/#%[]=:;$&()+,!?*@'~"


class QueryParams:
    """A query string read like Django's QueryDict."""

    def __init__(self, query_string: str) -> None:
        self.raw = query_string
        self._items = parse_qsl(query_string, keep_blank_values=True, separator="&")

    @property
    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get(self, key: str) -> str | None:
        """The last value of `key` (Django's ``QueryDict.get``), or None."""
        found = None
        for name, value in self._items:
            if name == key:
                found = value
        return found

    def getlist(self, key: str) -> list[str]:
        return [value for name, value in self._items if name == key]


# --- fields ---------------------------------------------------------------------------------


def json_order(names: Sequence[str], types: dict[str, str]) -> list[str]:
    """The serializer's field order: the primary key first, then the declared JSON fields.

    The seed's site-2 serializers declare their text columns (the fault lists) as
    ``serializers.JSONField()``; DRF lists the primary key, declared fields, then the
    model's fields. Site 1 has no text column, so its order is the model's.
    """
    first, rest = names[0], list(names[1:])
    declared = [n for n in rest if types.get(n) == "string"]
    return [first, *declared, *(n for n in rest if n not in declared)]


def _flex_values(params: QueryParams, key: str) -> list[str]:
    """drf-flex-fields' `_get_query_param_value`: one value is split at commas, several are not."""
    values = params.getlist(key) or params.getlist(f"{key}[]")
    if len(values) == 1:
        return values[0].split(",")
    return values


def _first_level(values: list[str]) -> tuple[set[str], set[str]]:
    """drf-flex-fields' `split_levels`: names before the first dot, and the dotted ones."""
    first, dotted = set(), set()
    for value in values:
        head, dot, _ = value.partition(".")
        first.add(head)
        if dot:
            dotted.add(head)
    return first, dotted


def selected_fields(params: QueryParams, order: Sequence[str]) -> list[str]:
    """The fields a reply carries, in serializer order (``fields`` selects, never reorders)."""
    sparse, _ = _first_level(_flex_values(params, "fields"))
    omit, next_level = _first_level(_flex_values(params, "omit"))
    chosen = []
    for name in order:
        if name in omit and name not in next_level:
            continue  # "omit=a.b" omits b inside a, not a itself
        if sparse and not (sparse & _WILDCARDS) and name not in sparse:
            continue
        chosen.append(name)
    return chosen


# --- JSON -----------------------------------------------------------------------------------


def _iso_text(column: str, fraction_format: str) -> pl.Expr:
    """Naive local time as `datetime.isoformat()` (or `str()`) writes it: a fraction only if
    there is one. Zone-aware input is taken in its own zone, the site's."""
    moment = pl.col(column).dt.replace_time_zone(None)
    whole = moment.dt.strftime(fraction_format.replace("%.6f", ""))
    return (
        pl.when(moment.dt.microsecond() == 0)
        .then(whole)
        .otherwise(moment.dt.strftime(fraction_format))
        .alias(column)
    )


def _times_as_text(frame: pl.DataFrame, fmt: str) -> pl.DataFrame:
    times = [n for n, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    return frame.with_columns(_iso_text(n, fmt) for n in times) if times else frame


def page_body(
    count: int,
    next_url: str | None,
    previous_url: str | None,
    rows: pl.DataFrame,
    fields: list[str],
) -> bytes:
    """DRF's paginated reply: ``{"count","next","previous","results"}``, compact UTF-8 JSON."""
    if rows.height == 0:
        records = []
    elif fields:
        records = _times_as_text(rows.select(fields), "%Y-%m-%dT%H:%M:%S%.6f").to_dicts()
    else:
        records = [{} for _ in range(rows.height)]  # fields that match nothing: empty objects
    document = {"count": count, "next": next_url, "previous": previous_url, "results": records}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# --- links ----------------------------------------------------------------------------------


def absolute_url(scheme: str, host: str, path: str, query_string: str) -> str:
    """Django's `build_absolute_uri()` of the request."""
    url = f"{scheme}://{host}{quote(path, safe=_PATH_SAFE)}"
    query = quote(query_string, safe=_QUERY_SAFE)
    return f"{url}?{query}" if query else url


def page_link(url: str, page: int | None) -> str:
    """DRF's `replace_query_param` (or `remove_query_param` for page 1): keys sorted."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = parse_qs(query, keep_blank_values=True)
    if page is None or page == 1:
        params.pop("page", None)
    else:
        params["page"] = [str(page)]
    return urlunsplit(
        (scheme, netloc, path, urlencode(sorted(params.items()), doseq=True), fragment)
    )


# --- CSV ------------------------------------------------------------------------------------


def _awkward(frame: pl.DataFrame) -> bool:
    """Values whose text polars writes unlike Python's `repr`: exponents and non-finite floats."""
    for name, kind in frame.schema.items():
        if kind in (pl.Float32, pl.Float64):
            size = frame.get_column(name).abs()
            if ((size < 1e-4) & (size != 0)).any() or (size >= 1e16).any():
                return True
            if not frame.get_column(name).is_finite().fill_null(True).all():
                return True
    return False


def _python_csv(frame: pl.DataFrame) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)  # the excel dialect of csv.DictWriter: "\r\n", minimal quoting
    for row in frame.iter_rows():
        writer.writerow(row)  # None is written as "", a float as its repr
    return out.getvalue().encode()


def csv_chunk(frame: pl.DataFrame, header: bool) -> bytes:
    """Rows as the seed's download wrote them: `str(datetime)` (a space, no offset), floats
    as `repr`, NULL and "" both empty, a field quoted only if it needs it, lines in CRLF."""
    frame = _times_as_text(frame, "%Y-%m-%d %H:%M:%S%.6f")
    head = (",".join(frame.columns) + "\r\n").encode() if header else b""
    if frame.height == 0:
        return head
    if _awkward(frame):
        return head + _python_csv(frame)
    # polars quotes an empty string (""), Python's csv writes it as NULL: as nothing.
    texts = [n for n, t in frame.schema.items() if t == pl.String]
    if texts:
        frame = frame.with_columns(
            pl.when(pl.col(n) == "").then(None).otherwise(pl.col(n)).alias(n) for n in texts
        )
    body = frame.write_csv(include_header=False, line_terminator="\r\n", null_value="")
    return head + body.encode()
