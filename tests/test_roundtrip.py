"""What PostgreSQL holds equals what the files hold, row for row and value for value."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest

from exporter.pipeline import run
from exporter.plan import day_bounds
from tests.conftest import EDGE_TEXTS, SeedSites, published_manifest
from tests.support.seed import q

SEOUL = ZoneInfo("Asia/Seoul")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d:\d\d$")
DUCK_TYPES = {"integer": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "timestamp": "VARCHAR"}


def canonical(value: Any) -> Any:
    """Make a value hashable and comparable: NaN equals NaN, instants compare in UTC."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "timestamps must carry a zone"
        return value.astimezone(UTC)
    return value


def rows_of(records: list[tuple]) -> Counter:
    return Counter(tuple(canonical(v) for v in row) for row in records)


def source_rows(dsn: str, table: str, columns: list[str], day: date | None = None) -> Counter:
    where = ""
    if day is not None:
        start, end = day_bounds(day, SEOUL)
        where = (
            f"WHERE \"TIMESTAMP\" >= '{start.isoformat()}' AND \"TIMESTAMP\" < '{end.isoformat()}'"
        )
    with psycopg.connect(dsn) as conn:
        return rows_of(
            conn.execute(
                f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)} {where}"
            ).fetchall()
        )


def parquet_rows(path: Path) -> Counter:
    return rows_of([tuple(r.values()) for r in pq.read_table(path).to_pylist()])


def csv_rows(path: Path, types: dict[str, str]) -> Counter:
    """Read a CSV as a consumer would (DuckDB, quoted empty string != NULL)."""
    columns = {name: DUCK_TYPES[kind] for name, kind in types.items()}
    relation = duckdb.read_csv(
        str(path),
        header=True,
        columns=columns,
        allow_quoted_nulls=False,
        auto_detect=False,
        delimiter=",",
        quotechar='"',
        escapechar='"',
        hive_partitioning=False,
    )
    records = []
    names = list(types)
    for row in relation.fetchall():
        values = list(row)
        for i, name in enumerate(names):
            if types[name] == "timestamp":
                assert RFC3339.match(values[i]), values[i]
                values[i] = datetime.fromisoformat(values[i])
        records.append(tuple(values))
    return rows_of(records)


@pytest.mark.parametrize("site", ["1", "2"])
def test_every_partition_round_trips(seed_sites: SeedSites, published: Path, site: str) -> None:
    m = published_manifest(published, site)
    assert sorted(m.tables) == ["bank", "etc", "pcs", "rack"]
    for name, table in m.tables.items():
        sources = [c.source for c in table.columns]
        types = {c.name: c.type for c in table.columns}
        assert [p.date for p in table.partitions] == ["2022-09-01", "2022-09-02"]
        union: Counter = Counter()
        for partition in table.partitions:
            expected = source_rows(
                seed_sites.dsns[site], name, sources, date.fromisoformat(partition.date)
            )
            parquet = parquet_rows(published / partition.files["parquet"].path)
            csv = csv_rows(published / partition.files["csv"].path, types)
            assert parquet == expected, f"{site}/{name}/{partition.date} parquet"
            assert csv == expected, f"{site}/{name}/{partition.date} csv"
            assert partition.rows == sum(expected.values())
            assert partition.duplicates == sum(n - 1 for n in expected.values())
            union += parquet
        assert union == source_rows(seed_sites.dsns[site], name, sources)


def test_edge_values_survive(published: Path) -> None:
    rack = published_manifest(published, "1").tables["rack"]
    day1, day2 = (published / p.files["csv"].path for p in rack.partitions)
    text1 = day1.read_text()
    # The last instant of a day stays in it; local midnight opens the next day.
    assert "2022-09-01T23:59:59.999999+09:00,1,1,NaN,inf,-inf,-12.5," in text1
    assert "2022-09-02T00:00:00+09:00,1,1,,0.1,-0.0,1e-300," in day2.read_text()
    assert "2022-09-01T12:00:00.500+09:00,1,9,50.0,99.0,682.25,0.0," in text1
    assert "2022-09-02T00:00:00" not in text1
    first_day = rack.partitions[0]
    assert first_day.min_timestamp == "2022-09-01T00:00:00+09:00"
    assert first_day.max_timestamp == "2022-09-01T23:59:59.999999+09:00"
    assert rack.partitions[1].duplicates >= 1

    bank = published_manifest(published, "2").tables["bank"].partitions[0]
    texts = [
        r["master_rack_communication_fault"]
        for r in pq.read_table(published / bank.files["parquet"].path).to_pylist()
    ]
    for text in EDGE_TEXTS:
        assert text in texts
    csv_text = (published / bank.files["csv"].path).read_text()
    # The empty string is quoted; NULL is an empty field.
    last = csv_text.splitlines()[-1]
    # MASTER_RACK_COMMUNICATION_FAULT is the 17th of 25 columns, as in the seed's schema.
    assert last == "2022-09-01T23:59:59.999999+09:00,2,NaN" + "," * 14 + '""' + "," * 8


def test_parquet_stores_instants_with_the_zone(published: Path) -> None:
    rack = published_manifest(published, "1").tables["rack"].partitions[0]
    parquet = pq.ParquetFile(published / rack.files["parquet"].path)
    field = parquet.schema_arrow.field("timestamp")
    assert str(field.type) == "timestamp[us, tz=Asia/Seoul]"
    assert (
        parquet.metadata.schema.column(0).logical_type.to_json().count('"isAdjustedToUTC":true')
        == 1
    )
    assert parquet.metadata.row_group(0).column(3).statistics.has_min_max


def test_two_runs_give_byte_identical_files(
    seed_sites: SeedSites, published: Path, tmp_path: Path
) -> None:
    run(seed_sites.config(), target=str(tmp_path))
    first = sorted(p.relative_to(published) for p in (published / "data").rglob("*.*"))
    second = sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*.*"))
    assert first == second and len(first) == 2 * 2 * 4 * 2
    for relative in first:
        assert (published / relative).read_bytes() == (tmp_path / relative).read_bytes()


def test_manifest_names_only_verified_files(published: Path) -> None:
    import hashlib

    for site in ("1", "2"):
        for table in published_manifest(published, site).tables.values():
            for partition in table.partitions:
                for entry in partition.files.values():
                    data = (published / entry.path).read_bytes()
                    assert len(data) == entry.bytes
                    assert hashlib.sha256(data).hexdigest() == entry.sha256
