"""`Dataset.sql`: views over every site's files, and nothing else reachable."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from exporter.query import Dataset, QueryError, records_json, write_csv


@pytest.fixture(scope="module")
def dataset(published: Path) -> Dataset:
    return Dataset.open(str(published))


def manifest_rows(root: Path, site: str, table: str) -> dict[str, int]:
    document = json.loads((root / f"sites/{site}/manifest.json").read_text())
    return {p["date"]: p["rows"] for p in document["tables"][table]["partitions"]}


def test_table_views_span_the_sites_with_site_and_date(dataset: Dataset, published: Path) -> None:
    result = dataset.sql("SELECT site, date, count(*) AS n FROM rack GROUP BY ALL ORDER BY ALL")
    expected = [
        {"site": site, "date": dt.date.fromisoformat(day), "n": n}
        for site in ("1", "2")
        for day, n in manifest_rows(published, site, "rack").items()
    ]
    assert result.to_pylist() == expected
    assert result.schema.field("site").type == pa.string()
    assert result.schema.field("date").type == pa.date32()


def test_union_by_name_over_differing_schemas(dataset: Dataset) -> None:
    # rack_module_fault exists on site 2 only: NULL for every row of site 1.
    result = dataset.sql(
        "SELECT site, count(rack_module_fault) AS faults, count(*) AS n "
        "FROM rack GROUP BY site ORDER BY site"
    ).to_pylist()
    assert result[0]["faults"] == 0 and result[1]["faults"] == result[1]["n"]
    assert "table" not in dataset.sql("SELECT * FROM pcs LIMIT 0").schema.names


def test_per_site_views(dataset: Dataset) -> None:
    assert dataset.sql("SELECT DISTINCT site FROM pcs_2").to_pylist() == [{"site": "2"}]
    assert sorted(dataset.views())[:5] == ["bank", "bank_1", "bank_2", "etc", "etc_1"]
    # Site 2's pcs has no bank_id, site 1's has: the union view has it, NULL for site 2.
    rows = dataset.sql("SELECT site, count(bank_id) AS b FROM pcs GROUP BY 1 ORDER BY 1")
    assert [r["b"] > 0 for r in rows.to_pylist()] == [True, False]


def test_times_are_in_the_sites_zone(dataset: Dataset) -> None:
    result = dataset.sql("SELECT min(timestamp) AS first FROM rack_1")
    assert result.schema.field("first").type == pa.timestamp("us", tz="Asia/Seoul")
    assert result.column(0)[0].as_py().isoformat() == "2022-09-01T00:00:00+09:00"
    # Local days work directly: the day boundary row stays in its day.
    days = dataset.sql(
        "SELECT CAST(timestamp AS DATE) = date AS same FROM rack GROUP BY ALL"
    ).to_pylist()
    assert days == [{"same": True}]


def test_views_are_catalog_objects(dataset: Dataset, published: Path) -> None:
    """What plain DuckDB over the same files answers: joins, SHOW, DESCRIBE, the catalog."""
    joined = dataset.sql("SELECT count(*) FROM bank_1 JOIN rack_1 USING (timestamp, bank_id)")
    day_files = f"{published}/data/parquet/site=1/table=%s/*/*.parquet"
    plain = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{day_files % 'bank'}') "
        f"JOIN read_parquet('{day_files % 'rack'}') USING (timestamp, bank_id)"
    ).fetchall()
    assert joined.column(0).to_pylist() == [plain[0][0]] == [4615]
    names = ["bank", "bank_1", "bank_2", "etc", "etc_1", "etc_2", "pcs", "pcs_1", "pcs_2",
             "rack", "rack_1", "rack_2"]  # fmt: skip
    assert dataset.sql("SHOW TABLES").column("name").to_pylist() == names
    tables = dataset.sql(
        "SELECT table_name, table_type FROM information_schema.tables ORDER BY 1"
    ).to_pylist()
    assert tables == [{"table_name": name, "table_type": "VIEW"} for name in names]
    described = dataset.sql("DESCRIBE rack_1").to_pylist()
    assert [(r["column_name"], r["column_type"]) for r in described[:3] + described[-2:]] == [
        ("timestamp", "TIMESTAMP WITH TIME ZONE"),
        ("bank_id", "BIGINT"),
        ("rack_id", "BIGINT"),
        ("date", "DATE"),
        ("site", "VARCHAR"),
    ]
    summary = dataset.sql("SUMMARIZE etc_2").to_pylist()
    assert {r["column_name"]: r["count"] for r in summary}["site"] == 576


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "the SQL can read only the views (bank, "),
        ("SELECT * FROM read_text('/etc/hostname')", "other files, settings and extensions are"),
        ("INSTALL httpfs", "only a read-only SELECT is allowed, not LOAD"),
        ("LOAD httpfs", "only a read-only SELECT is allowed, not LOAD"),
        ("ATTACH '/tmp/x.duckdb'", "only a read-only SELECT is allowed, not ATTACH"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "only a read-only SELECT is allowed, not COPY"),
        ("EXPLAIN ANALYZE COPY rack TO '/tmp/x.csv'", "not EXPLAIN"),
        ("SET enable_external_access = true", "only a read-only SELECT is allowed, not SET"),
        ("CREATE TABLE t AS SELECT 1", "not CREATE"),
        ("SELECT 1; SELECT 2", "give exactly one SELECT statement (got 2)"),
        ("SELEC 1", 'syntax error at or near "SELEC"'),
        ("SELECT * FROM nope", "Table with name nope does not exist"),
    ],
    ids=["read_csv", "read_text", "install", "load", "attach", "copy", "explain-analyze",
         "set", "create", "two", "syntax", "unknown-view"],
)  # fmt: skip
def test_sql_refuses_all_but_reading_the_views(
    dataset: Dataset, statement: str, message: str
) -> None:
    with pytest.raises(QueryError) as raised:
        dataset.sql(statement)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value) and raised.value.exit_code == 2
    assert not Path("/tmp/x.csv").exists() and not Path("/tmp/x.duckdb").exists()


def test_the_database_itself_is_locked(published: Path) -> None:
    """Below the statement check, DuckDB refuses other files and any setting change."""
    with Dataset.open(str(published)) as dataset:
        dataset.sql("SELECT 1")  # makes the views
        database = dataset.connection
        assert database.sql("SELECT count(*) FROM etc").fetchall() == [(576 * 2,)]
        for statement in (
            "SELECT * FROM read_csv('/etc/passwd')",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "SET enable_external_access = true",
            "SET allowed_paths = ['/etc/passwd']",
            "SET memory_limit = '100GB'",
            "SET threads = 64",
            "SET temp_directory = '/tmp'",
            "RESET lock_configuration",
            "INSTALL httpfs",
        ):
            with pytest.raises(duckdb.Error):
                database.execute(statement)


def test_sql_results_follow_the_output_conventions(dataset: Dataset) -> None:
    table = dataset.sql(
        "SELECT TIMESTAMP '2022-01-01 10:00:00.5' AS naive, "
        "TIMESTAMPTZ '2022-01-01 10:00:00+09' AS aware, "
        "['nan'::DOUBLE, '-inf'::DOUBLE, 1.5] AS l, NULL::VARCHAR AS n, '' AS e"
    )
    assert json.loads(records_json(table)) == {
        "count": 1,
        "results": [
            {
                "naive": "2022-01-01T10:00:00.500",  # no zone, no offset
                "aware": "2022-01-01T10:00:00+09:00",
                "l": ["NaN", "-inf", 1.5],  # valid JSON even inside lists
                "n": None,
                "e": "",
            }
        ],
    }
    out = io.BytesIO()
    write_csv(table.drop_columns(["l"]).to_reader(), out)
    assert out.getvalue() == (
        b'naive,aware,n,e\n2022-01-01T10:00:00.500,2022-01-01T10:00:00+09:00,,""\n'
    )
    with pytest.raises(QueryError, match="CSV format does not support nested data"):
        write_csv(table.to_reader(), io.BytesIO())
    with pytest.raises(QueryError, match="CAST such columns to VARCHAR"):
        records_json(dataset.sql("SELECT INTERVAL 1 HOUR AS i"))
