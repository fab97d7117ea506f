"""The query helper answers the old API's questions exactly as PostgreSQL does on the source."""

from __future__ import annotations

import io
import json
import math
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exporter.manifest import TableManifest
from exporter.query import MAX_PAGE_SIZE, Dataset, QueryError, page_json, write_csv, write_parquet
from tests.conftest import SeedSites, published_manifest
from tests.support.seed import q

SEOUL = ZoneInfo("Asia/Seoul")


def canonical(value: Any) -> Any:
    """NaN equals NaN; instants compare in UTC whatever zone they carry."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, datetime):
        assert value.tzinfo is not None
        return value.astimezone(UTC)
    return value


def rows_of(records: list[tuple]) -> list[tuple]:
    return [tuple(canonical(v) for v in row) for row in records]


def instant(text: str | None) -> datetime | None:
    """The test's own reading of a time: ISO 8601, without an offset in Seoul time."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=SEOUL)


@dataclass(frozen=True)
class Case:
    site: str
    table: str
    bank: int | None = None
    rack: int | None = None
    fields: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None
    page: int = 1
    page_size: int = 100

    @property
    def id(self) -> str:
        parts = [f"s{self.site}", self.table]
        parts += [f"b{self.bank}"] if self.bank is not None else []
        parts += [f"r{self.rack}"] if self.rack is not None else []
        parts += [f"{len(self.fields)}f"] if self.fields else []
        parts += [f"{self.start}..{self.end}", f"p{self.page}x{self.page_size}"]
        return "-".join(parts)


def postgres(
    dsn: str, table: TableManifest, name: str, case: Case, paged: bool = True
) -> tuple[int, list[tuple]]:
    """The count and the rows the source database gives for the same question."""
    columns = {c.name: c for c in table.columns}
    chosen = list(case.fields or columns)
    stamp = table.columns[0]
    where, params = ["TRUE"], []
    for value, op in ((instant(case.start), ">="), (instant(case.end), "<=")):
        if value is not None:
            where.append(f"{q(stamp.source)} {op} %s")
            params.append(value)
    for value, column in ((case.bank, "bank_id"), (case.rack, "rack_id")):
        if value is not None:
            where.append(f"{q(columns[column].source)} = %s")
            params.append(value)
    keys = list(table.keys)
    order = [stamp.name, *keys, *(f for f in chosen if f != stamp.name and f not in keys)]
    # Byte order for text, as DuckDB sorts; NULLs after values, as the helper promises.
    order_sql = ", ".join(
        q(columns[n].source)
        + (' COLLATE "C"' if columns[n].type == "string" else "")
        + " ASC NULLS LAST"
        for n in order
    )
    select = ", ".join(q(columns[n].source) for n in chosen)
    body = f"FROM {q(name)} WHERE {' AND '.join(where)}"
    limit = ""
    if paged:
        limit = f" LIMIT {case.page_size} OFFSET {(case.page - 1) * case.page_size}"
    with psycopg.connect(dsn) as conn:
        count = conn.execute(f"SELECT count(*) {body}", params).fetchone()
        rows = conn.execute(
            f"SELECT {select} {body} ORDER BY {order_sql}{limit}", params
        ).fetchall()
    assert count is not None
    return count[0], rows_of(rows)


# --- random cases, seeded -----------------------------------------------------------------

FIXED_TIMES = [
    "2022-09-01T00:00:00",
    "2022-09-01T00:00:00+09:00",
    "2022-08-31T15:00:00Z",
    "2022-09-01T10:00:00",
    "2022-09-01T12:00:00",
    "2022-09-01T12:00:00.5",
    "2022-09-01T23:55:00",
    "2022-09-01T23:59:59.999999",
    "2022-09-01T23:59:59.999999+09:00",
    "2022-09-02T00:00:00",
    "2022-09-02T00:04:59",
    "2022-09-02",
    "2022-09-02T23:55:00",
    "2022-09-03T00:00:00",
    "2022-08-30T00:00:00",
]


def random_time(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(FIXED_TIMES)
    local = datetime(2022, 8, 31, 23, tzinfo=SEOUL) + timedelta(seconds=rng.randrange(50 * 3600))
    if rng.random() < 0.5:
        local = local.replace(second=0)  # on the 300 s grid more often than not
    style = rng.choice(["naive", "offset", "utc"])
    if style == "naive":
        return local.replace(tzinfo=None).isoformat()
    if style == "utc":
        return local.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return local.isoformat()


def random_cases(root: Path, count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    manifests = {site: published_manifest(root, site) for site in ("1", "2")}
    cases = []
    for _ in range(count):
        site = rng.choice(["1", "2"])
        name = rng.choice(sorted(manifests[site].tables))
        table = manifests[site].tables[name]
        names = [c.name for c in table.columns]
        bank = rng.choice([None, None, 1, 2, 3]) if "bank_id" in names else None
        rack = rng.choice([None, 1, 2, 5, 9]) if "rack_id" in names else None
        fields = None
        if rng.random() < 0.7:
            fields = tuple(rng.sample(names, rng.randint(1, min(4, len(names)))))
        start, end = rng.choice([None, random_time(rng)]), rng.choice([None, random_time(rng)])
        low, high = instant(start), instant(end)
        if low and high and high < low:
            start, end = end, start
        size = rng.choice([1, 7, 100, 100, 1000])
        cases.append(Case(site, name, bank, rack, fields, start, end, 1, size))
    return cases


@pytest.fixture(scope="module")
def dataset(published: Path) -> Dataset:
    return Dataset.open(str(published))


def check(dataset: Dataset, seed_sites: SeedSites, published: Path, case: Case) -> None:
    table = published_manifest(published, case.site).tables[case.table]
    dsn = seed_sites.dsns[case.site]
    total, _ = postgres(dsn, table, case.table, case)
    pages = max(1, math.ceil(total / case.page_size))
    # Try the first, the last and one page in between of each case.
    for number in sorted({1, pages, (pages + 1) // 2}):
        paged = Case(**{**case.__dict__, "page": number})
        count, expected = postgres(dsn, table, case.table, paged)
        page = dataset.query(
            case.site,
            case.table,
            bank=case.bank,
            rack=case.rack,
            fields=list(case.fields) if case.fields else None,
            start=case.start,
            end=case.end,
            page=number,
            page_size=case.page_size,
        )
        assert page.count == count
        assert page.rows.columns == list(case.fields or [c.name for c in table.columns])
        assert rows_of(page.rows.rows()) == expected, f"{case.id} page {number}"
        assert page.next == (number + 1 if number < pages else None)
        assert page.previous == (number - 1 if number > 1 else None)


RANDOM_CASES = 120


@pytest.fixture(scope="module")
def cases(published: Path) -> list[Case]:
    return random_cases(published, RANDOM_CASES, seed=20220901)


@pytest.mark.parametrize("number", range(RANDOM_CASES), ids=lambda n: f"case{n:03d}")
def test_random_questions_match_postgres(
    dataset: Dataset, seed_sites: SeedSites, published: Path, cases: list[Case], number: int
) -> None:
    check(dataset, seed_sites, published, cases[number])


@pytest.mark.parametrize(
    "case",
    [
        Case("1", "rack", 1, 1, ("timestamp", "rack_soc"), "2022-09-01T10:00", "2022-09-01T12:00"),
        # Across the day boundary, with the edge rows at 23:59:59.999999 and 00:00:00.
        Case("1", "rack", 1, 1, None, "2022-09-01T23:55:00", "2022-09-02T00:00:00"),
        Case("1", "rack", None, None, None, "2022-09-01T23:59:59.999999", "2022-09-02"),
        Case("2", "bank", None, None, None, "2022-09-01T09:59:59", "2022-09-01T16:00:00.123"),
        Case("2", "bank", 2, None, None, "2022-09-01T23:59:59.999999", None, 1, 1),
        Case("2", "pcs", None, None, ("ai_freq", "timestamp"), None, None, 3, 1000),
        # Empty: before the data, between two readings, a device that does not exist.
        Case("1", "etc", None, None, None, "2022-08-01", "2022-08-31T23:59:59"),
        Case("1", "etc", None, None, None, "2022-09-01T10:00:01", "2022-09-01T10:04:59"),
        Case("1", "rack", 7, None, None, None, None),
    ],
    ids=lambda c: c.id,
)
def test_chosen_questions_match_postgres(
    dataset: Dataset, seed_sites: SeedSites, published: Path, case: Case
) -> None:
    check(dataset, seed_sites, published, case)


def test_the_old_api_example(dataset: Dataset) -> None:
    page = dataset.query(
        "1", "rack", bank=1, rack=1, fields="timestamp,rack_soc",
        start="2022-09-01T10:00:00", end="2022-09-01T12:00:00", page=1,
    )  # fmt: skip
    document = json.loads(page_json(page))
    assert (document["count"], document["next"], document["previous"]) == (25, None, None)
    assert document["results"][0]["timestamp"] == "2022-09-01T10:00:00+09:00"
    assert document["results"][-1]["timestamp"] == "2022-09-01T12:00:00+09:00"  # end inclusive
    assert list(document["results"][0]) == ["timestamp", "rack_soc"]


def test_times_without_offset_are_site_local(dataset: Dataset) -> None:
    local = dataset.query("1", "bank", start="2022-09-01T10:00:00", end="2022-09-01T11:00:00")
    utc = dataset.query("1", "bank", start="2022-09-01T01:00:00Z", end="2022-09-01T02:00:00Z")
    assert local.count == utc.count == 13
    assert local.rows.equals(utc.rows)


def test_json_spells_nan_and_inf_and_keeps_fractions(dataset: Dataset) -> None:
    page = dataset.query(
        "1", "rack", bank=1, rack=1, start="2022-09-01T23:59:59.999999",
        end="2022-09-01T23:59:59.999999",
    )  # fmt: skip
    [row] = json.loads(page_json(page))["results"]
    assert row["timestamp"] == "2022-09-01T23:59:59.999999+09:00"
    assert (row["rack_soc"], row["rack_soh"], row["rack_voltage"]) == ("NaN", "inf", "-inf")
    assert row["rack_max_cell_voltage"] is None  # NULL stays null
    assert page.rows["rack_soc"].is_nan().to_list() == [True]  # the frame keeps real floats


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (0, "Invalid page. 0 is not a page number"),
        (-1, "Invalid page. -1 is not a page number"),
        ("abc", "Invalid page. 'abc' is not a page number"),
        ("1.0", "Invalid page. '1.0' is not a page number"),
        (1.0, "Invalid page. 1.0 is not a page number"),
        (True, "Invalid page. True is not a page number"),
        (3, "Invalid page. Page 3 is past the end: 25 row(s) make 1 page(s) of 100"),
    ],
    ids=["zero", "negative", "abc", "1.0-text", "1.0-float", "bool", "past-the-end"],
)
def test_invalid_pages(dataset: Dataset, page: Any, message: str) -> None:
    with pytest.raises(QueryError, match="^" + re.escape(message)) as raised:
        dataset.query(
            "1", "rack", bank=1, rack=1, start="2022-09-01T10:00", end="2022-09-01T12:00",
            page=page,
        )  # fmt: skip
    assert raised.value.exit_code == 2


def test_paging_edges(dataset: Dataset) -> None:
    empty = dataset.query("1", "rack", bank=7)
    assert (empty.count, empty.page, empty.next, empty.previous) == (0, 1, None, None)
    assert empty.rows.height == 0 and empty.rows.columns == dataset.columns("1", "rack")
    with pytest.raises(QueryError, match="Invalid page. Page 2 is past the end"):
        dataset.query("1", "rack", bank=7, page=2)
    big = dataset.query("1", "rack", page_size=5000)
    assert big.page_size == MAX_PAGE_SIZE and big.rows.height == MAX_PAGE_SIZE
    assert big.next == 2
    last = dataset.query("1", "rack", page="last", page_size="1000")
    assert last.next is None and last.previous == last.page - 1
    assert (last.page - 1) * 1000 + last.rows.height == last.count
    for size in (0, -5, "x", "1.5"):
        with pytest.raises(QueryError, match="Invalid page size"):
            dataset.query("1", "rack", page_size=size)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"site": "9"}, "unknown site '9'; sites: 1, 2"),
        ({"table": "cells"}, "unknown table 'cells' for site 1; tables: bank, etc, pcs, rack"),
        ({"fields": "timestamp,soc"}, "unknown field 'soc' in table rack of site 1; fields: "
         "timestamp, bank_id, rack_id, rack_soc,"),
        ({"start": "2022-13-01"}, "start '2022-13-01' is not an ISO 8601 time"),
        ({"end": "yesterday"}, "end 'yesterday' is not an ISO 8601 time"),
        ({"start": "2022-09-02", "end": "2022-09-01"}, "end 2022-09-01 is before start 2022-09-02"),
        ({"site": "2", "table": "pcs", "bank": 1}, "table pcs of site 2 has no bank_id column"),
        ({"table": "bank", "rack": 1}, "table bank of site 1 has no rack_id column"),
        ({"bank": "one"}, "bank 'one' is not a whole number"),
    ],
    ids=["site", "table", "field", "month-13", "word", "end-before-start", "bank-on-pcs",
         "rack-on-bank", "bank-text"],
)  # fmt: skip
def test_bad_questions_name_the_value_and_the_choices(
    dataset: Dataset, kwargs: dict[str, Any], message: str
) -> None:
    request = {"site": "1", "table": "rack", **kwargs}
    with pytest.raises(QueryError) as raised:
        dataset.query(**request)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_only_pruned_days_are_read(dataset: Dataset, published: Path) -> None:
    read: list[str] = []
    original = dataset._local

    def spy(*args: Any, **kwargs: Any) -> str:
        path = original(*args, **kwargs)
        read.append(Path(path).name)
        return path

    day1 = published_manifest(published, "1").tables["rack"].partitions[0]
    dataset._local = spy  # type: ignore[method-assign]
    try:
        dataset.query("1", "rack", start="2022-09-02T10:00", end="2022-09-02T11:00")
        assert set(read) == {"1_rack_2022-09-02.parquet"}
        read.clear()
        # Day 1 lies inside the range: its count comes from the manifest, and page 1 is in it.
        page = dataset.query("1", "rack", start="2022-08-31", end="2022-09-01T23:59:59.999999")
        assert (set(read), page.count) == ({"1_rack_2022-09-01.parquet"}, day1.rows)
        read.clear()
        # The whole table: no counting at all, and page 1 is read from the first day only.
        page = dataset.query("1", "rack")
        assert set(read) == {"1_rack_2022-09-01.parquet"} and page.next == 2
        read.clear()
        # A question wholly outside the data reads nothing.
        assert dataset.query("1", "rack", start="2023-01-01").count == 0
        assert read == []
    finally:
        del dataset._local


def test_streamed_csv_is_the_published_csv(dataset: Dataset, published: Path) -> None:
    """All rows of a table, streamed, give exactly the published daily CSVs, concatenated."""
    for site, name in (("1", "rack"), ("2", "bank")):
        reader = dataset.rows(site, name)
        out = io.BytesIO()
        rows = write_csv(reader, out)
        expected_lines: list[str] = []
        partitions = published_manifest(published, site).tables[name].partitions
        for partition in partitions:
            text = (published / partition.files["csv"].path).read_bytes().decode()
            header, body = text.split("\n", 1)
            expected_lines = expected_lines or [header + "\n"]
            expected_lines.append(body)
        assert out.getvalue().decode() == "".join(expected_lines)
        assert rows == sum(p.rows for p in partitions)


@pytest.mark.parametrize("table", ["bank", "etc", "pcs", "rack"])
@pytest.mark.parametrize("site", ["1", "2"])
def test_streamed_rows_match_postgres_in_order(
    dataset: Dataset, seed_sites: SeedSites, published: Path, site: str, table: str
) -> None:
    """Every column streams in file order (no sort): the files must be in the query's order."""
    columns = published_manifest(published, site).tables[table]
    for case in (
        Case(site, table),
        Case(site, table, fields=(columns.columns[-1].name, "timestamp"), end="2022-09-02T00:00"),
    ):
        _, expected = postgres(seed_sites.dsns[site], columns, table, case, paged=False)
        fields = list(case.fields) if case.fields else None
        streamed = dataset.rows(site, table, fields=fields, end=case.end).read_all()
        assert rows_of([tuple(r.values()) for r in streamed.to_pylist()]) == expected


def test_streaming_reads_one_day_at_a_time(dataset: Dataset) -> None:
    batches = list(dataset.rows("1", "etc", fields="timestamp"))
    days = [{t.date() for t in b.column(0).to_pylist()} for b in batches]
    assert all(len(d) == 1 for d in days)  # no batch mixes two local days
    assert sorted({d for s in days for d in s}) == [
        datetime(2022, 9, 1).date(),
        datetime(2022, 9, 2).date(),
    ]


def test_empty_download_still_has_the_header(dataset: Dataset) -> None:
    out = io.BytesIO()
    assert write_csv(dataset.rows("1", "etc", start="2030-01-01"), out) == 0
    assert out.getvalue() == b"timestamp,sensor1_temperature,sensor1_humidity\n"


def test_parquet_download_keeps_types(dataset: Dataset, tmp_path: Path) -> None:
    with open(tmp_path / "out.parquet", "wb") as handle:
        rows = write_parquet(dataset.rows("2", "bank", bank=2, fields="timestamp,bank_soc"), handle)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == rows
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="Asia/Seoul")


def test_tables_and_columns(dataset: Dataset) -> None:
    assert dataset.tables() == {
        "1": ["bank", "etc", "pcs", "rack"],
        "2": ["bank", "etc", "pcs", "rack"],
    }
    assert dataset.columns("1", "etc") == ["timestamp", "sensor1_temperature", "sensor1_humidity"]
    assert dataset.columns("2", "rack")[-3:] == [
        "rack_status_for_online",
        "rack_tray_volatge_imbalance_warning",
        "rack_module_fault",
    ]


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import exporter.query", id="query-helper"),
        pytest.param("from exporter.cli import main", id="cli"),
    ],
)
def test_reading_published_files_does_not_load_the_database_stack(code: str) -> None:
    # A reader of the files needs neither the database drivers nor the page templates;
    # the command line loads them only for the commands that export.
    probe = f"{code}; import sys; print(sorted(set(sys.argv[1:]) & set(sys.modules)))"
    stack = ["connectorx", "psycopg", "jinja2", "exporter.sources", "exporter.pipeline"]
    found = subprocess.run(
        [sys.executable, "-c", probe, *stack], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"
