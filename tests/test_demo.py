"""Tests of the embedded demo source: schema, determinism, realism and the SQLite files."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import sqlite3
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from exporter import demo
from exporter.errors import ConfigError
from tests.support.reference import SCHEMA_SQL, schema_columns

START = demo.DEFAULT_START
ARROW = {
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "int4": pa.int32(),
    "float8": pa.float64(),
    "text": pa.string(),
}
ALL = [(site, table) for site in demo.SCHEMAS for table in demo.SCHEMAS[site]]


def gen(site: str, table: str, days: int = 1, **kw) -> pa.Table:
    return demo.generate(site, table, START, days, **({"interval_s": 60} | kw))


@pytest.fixture(scope="module")
def frames() -> dict[tuple[str, str], pl.DataFrame]:
    """Every table over two days (to cross a local midnight) at one row a minute."""
    return {(site, table): pl.from_arrow(gen(site, table, days=2)) for site, table in ALL}


def local_hour(df: pl.DataFrame) -> pl.Series:
    return df["TIMESTAMP"].dt.convert_time_zone("Asia/Seoul").dt.hour()


@pytest.mark.parametrize(("site", "table"), ALL)
def test_schema_types_and_order(site: str, table: str) -> None:
    columns = demo.SCHEMAS[site][table]
    data = gen(site, table)
    assert columns[0] == ("TIMESTAMP", "timestamptz")
    assert data.schema.names == [name for name, _ in columns]
    assert [f.type for f in data.schema] == [ARROW[kind] for _, kind in columns]
    # Ordered by TIMESTAMP then keys; every tick has one row per key (plus duplicates).
    keys = ["TIMESTAMP", *demo.keys_for(site, table)]
    df = pl.from_arrow(data).select(keys)
    assert df.equals(df.sort(keys))
    assert df.unique().height % 1440 == 0
    assert df["TIMESTAMP"].min() == datetime.datetime(2022, 8, 31, 15, tzinfo=datetime.UTC)


def test_keys_for_and_odd_names() -> None:
    assert demo.keys_for("1", "rack") == ("BANK_ID", "RACK_ID")
    assert demo.keys_for("1", "pcs") == ("BANK_ID",)
    assert demo.keys_for("2", "pcs") == ()
    assert demo.keys_for("2", "etc") == ()
    widths = {
        (site, table): len(cols)
        for site in demo.SCHEMAS
        for table, cols in demo.SCHEMAS[site].items()
    }
    assert widths == {
        ("1", "bank"): 11,
        ("1", "rack"): 18,
        ("1", "pcs"): 11,
        ("1", "etc"): 3,
        ("2", "bank"): 25,
        ("2", "rack"): 29,
        ("2", "pcs"): 19,
        ("2", "etc"): 7,
    }
    rack2 = [name for name, _ in demo.SCHEMAS["2"]["rack"]]
    assert "RACK_STATUS_FOR_Online" in rack2
    assert "RACK_TRAY_VOLATGE_IMBALANCE_WARNING" in rack2
    assert "RACK_TRAY_VOLTAGE_IMBALANCE_WARNING" in [n for n, _ in demo.SCHEMAS["2"]["bank"]]
    assert "AI_FF" in [name for name, _ in demo.SCHEMAS["2"]["pcs"]]
    with pytest.raises(ConfigError):
        gen("3", "rack")
    with pytest.raises(ConfigError):
        gen("1", "module")


def test_deterministic_and_window_independent() -> None:
    assert gen("2", "rack").equals(gen("2", "rack"))
    assert not gen("2", "rack").equals(gen("2", "rack", seed=1))
    # A day's rows do not depend on the window that asks for it, counters included.
    two = gen("2", "pcs", days=2)
    second = demo.generate("2", "pcs", START + datetime.timedelta(days=1), 1, interval_s=60)
    assert two.slice(two.num_rows - second.num_rows).equals(second)


def test_duplicates_are_exact_and_adjacent(frames: dict) -> None:
    total = dups = 0
    for (site, table), df in frames.items():
        keys = ["TIMESTAMP", *demo.keys_for(site, table)]
        # Rows sharing a key are whole-row copies (sorted order makes them adjacent).
        assert df.unique().height == df.select(keys).unique().height
        total += df.height
        dups += df.height - df.unique().height
    assert dups > 0
    assert dups / total < 0.002
    rack = frames[("1", "rack")]
    same_as_previous = pl.all_horizontal(
        (pl.col(c).eq_missing(pl.col(c).shift(1))) for c in rack.columns
    )
    assert rack.select(same_as_previous.sum()).item() == rack.height - rack.unique().height


def test_nulls_only_in_float_values(frames: dict) -> None:
    cells = nulls = 0
    for (site, table), df in frames.items():
        for name, kind in demo.SCHEMAS[site][table]:
            if kind == "float8":
                cells += df.height
                nulls += df[name].null_count()
            else:
                assert df[name].null_count() == 0, (site, table, name)
    assert 0.0003 < nulls / cells < 0.003


def test_rack_values_follow_the_schedule(frames: dict) -> None:
    for site in demo.SCHEMAS:
        rack = frames[(site, "rack")]
        assert rack["RACK_SOC"].is_between(5, 95).all()
        assert rack["RACK_SOH"].is_between(97, 99.5).all()
        assert rack["RACK_VOLTAGE"].is_between(650, 720).all()
        for c in ("RACK_MAX_CELL_VOLTAGE", "RACK_MIN_CELL_VOLTAGE"):
            assert rack[c].is_between(3.55, 4.1).all()
        assert (rack["RACK_MAX_CELL_VOLTAGE"] > rack["RACK_MIN_CELL_VOLTAGE"]).all()
        assert rack["RACK_MAX_CELL_TEMPERATURE"].is_between(22, 35).all()
        for c, top in (
            ("RACK_MAX_CELL_VOLTAGE_POSITION", 180),
            ("RACK_MIN_CELL_VOLTAGE_POSITION", 180),
            ("RACK_MAX_CELL_TEMPERATURE_POSITION", 40),
            ("RACK_MIN_CELL_TEMPERATURE_POSITION", 40),
        ):
            pos = rack[c].drop_nulls()
            assert (pos == pos.round()).all() and pos.min() >= 1 and pos.max() <= top, c
        full = rack.drop_nulls()
        vmax, vmin = full["RACK_MAX_CELL_VOLTAGE"], full["RACK_MIN_CELL_VOLTAGE"]
        assert ((full["RACK_CELL_VOLTAGE_GAP"] - (vmax - vmin)).abs() < 1e-9).all()
        assert full["RACK_CELL_VOLTAGE_AVERAGE"].is_between(vmin, vmax).all()
        tmax, tmin = full["RACK_MAX_CELL_TEMPERATURE"], full["RACK_MIN_CELL_TEMPERATURE"]
        assert (tmax > tmin).all()
        assert ((full["RACK_CELL_TEMPERATURE_GAP"] - (tmax - tmin)).abs() < 1e-9).all()
        hour = local_hour(rack)
        current = rack["RACK_CURRENT"]
        assert current.filter(hour.is_between(2, 4)).min() > 30  # night charge
        assert current.filter(hour.is_between(14, 16)).max() < -30  # afternoon discharge
        assert current.filter(hour.is_between(8, 11)).abs().max() < 2  # idle
    rack2 = frames[("2", "rack")]
    for c in ("RACK_MAX_MODULE_HUMIDITY", "RACK_MIN_MODULE_HUMIDITY"):
        assert rack2[c].is_between(30, 60).all()
    for c in ("TEMPERATURE", "HUMIDITY"):
        for end in ("MAX", "MIN"):
            pos = rack2[f"RACK_{end}_MODULE_{c}_POSITION"].drop_nulls()
            assert (pos == pos.round()).all() and pos.is_between(1, 10).all()
    # The hottest module holds the hottest cell sensor (4 sensors per module).
    hot = rack2.drop_nulls()
    module_of_sensor = (hot["RACK_MAX_CELL_TEMPERATURE_POSITION"] / 4).ceil()
    assert (hot["RACK_MAX_MODULE_TEMPERATURE_POSITION"] == module_of_sensor).all()
    assert rack2["RACK_STATUS_FOR_Online"].is_in([0, 1]).all()
    assert rack2["RACK_TRAY_VOLATGE_IMBALANCE_WARNING"].mean() < 0.05


def test_banks_aggregate_racks_and_pcs_follows(frames: dict) -> None:
    per_tick = (
        frames[("1", "rack")]
        .unique()
        .group_by("TIMESTAMP", "BANK_ID")
        .agg(pl.col("RACK_SOC").mean().alias("soc"), pl.col("RACK_CURRENT").sum().alias("amps"))
    )
    bank = frames[("1", "bank")].unique().join(per_tick, on=["TIMESTAMP", "BANK_ID"])
    # Ticks where a rack value is NULL aggregate fewer racks: compare the complete ones.
    full = frames[("1", "rack")].unique().drop_nulls()
    full_ticks = full.group_by("TIMESTAMP").len().filter(pl.col("len") == 8)["TIMESTAMP"]
    bank = bank.filter(pl.col("TIMESTAMP").is_in(full_ticks.implode())).drop_nulls()
    assert (bank["BANK_SOC"] - bank["soc"]).abs().max() < 0.1
    assert (bank["BANK_DC_CURRENT"] - bank["amps"]).abs().max() < 0.5
    power = bank["BANK_DC_VOLT"] * bank["BANK_DC_CURRENT"] / 1000
    assert (bank["BANK_POWER"] - power).abs().max() < 0.2

    pcs = (
        frames[("1", "pcs")]
        .unique()
        .join(frames[("1", "bank")].unique(), on=["TIMESTAMP", "BANK_ID"])
    )
    pcs = pcs.drop_nulls()
    assert ((pcs["DC_POWER"] - pcs["BANK_POWER"]).abs() < 2 + 0.02 * pcs["BANK_POWER"].abs()).all()
    assert pcs["AC_FREQUENCY"].is_between(59.98, 60.02).all()
    assert pcs["PCS_AC_L1_THD"].is_between(1, 4).all()


def test_counters_flags_and_texts(frames: dict) -> None:
    pcs2, etc2, bank2 = frames[("2", "pcs")], frames[("2", "etc")], frames[("2", "bank")]
    for c in ("AI_C_KWH_ACH", "AI_C_KWH_ACL", "AI_D_KWH_ACH", "AI_D_KWH_ACL"):
        values = pcs2[c].drop_nulls()
        assert values.is_sorted() and values[-1] > values[0], c
    assert etc2["ACTIVE_ENERGY_TOTAL_HIGH"].drop_nulls().is_sorted()
    for name, kind in demo.SCHEMAS["2"]["bank"]:
        if kind == "int4" and name != "BANK_ID":
            assert bank2[name].is_in([0, 1]).all(), name
    assert bank2["RACK_OVER_TEMPERATURE_WARNING"].mean() < 0.05
    texts = pl.concat(
        [bank2["MASTER_RACK_COMMUNICATION_FAULT"], frames[("2", "rack")]["RACK_MODULE_FAULT"]]
    )
    assert texts.value_counts(sort=True)["MASTER_RACK_COMMUNICATION_FAULT"][0] == "[]"
    assert all(isinstance(json.loads(t), list) for t in texts.unique())


def test_pcs2_power_factor() -> None:
    pcs2 = pl.from_arrow(gen("2", "pcs")).drop_nulls()
    assert pcs2["AI_FF"].is_between(0, 1).all()
    busy = pcs2.filter(pl.col("AI_PAC").abs() > 100)
    assert busy.height > 0 and busy["AI_FF"].min() > 0.95


SQLITE_OF_PG = {"timestamp without time zone": "TIMESTAMP", "int4": "INTEGER", "float8": "REAL"}
SQLITE_OF_PG["text"] = "TEXT"


def test_sqlite_tables_have_the_reference_schema(tmp_path) -> None:
    """Every table of both sites has the seed service's columns: names, order, kinds."""
    reference = schema_columns(SCHEMA_SQL.read_text(encoding="utf-8"))
    assert sorted(reference) == ["1", "2"]
    demo.write_sqlite(tmp_path, days=1, interval_s=3600)
    for site, tables in reference.items():
        with sqlite3.connect(tmp_path / f"ess{site}.sqlite") as conn:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            assert sorted(row[0] for row in names) == sorted(tables), site
            for table, columns in tables.items():
                info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                assert [(row[1], row[2]) for row in info] == [
                    (name, SQLITE_OF_PG[kind]) for name, kind in columns
                ], (site, table)
        conn.close()


# information_schema's names for the types of the recorded golden source.
SQLITE_OF_INFO = {
    "timestamp without time zone": "TIMESTAMP",
    "integer": "INTEGER",
    "double precision": "REAL",
    "text": "TEXT",
}


def test_sqlite_tables_have_the_recorded_golden_columns(tmp_path) -> None:
    """The same, against the columns the seed service's database had when the golden
    replies were recorded (tests/golden/source.json): no seed_api folder needed."""
    source = json.loads((Path(__file__).parent / "golden" / "source.json").read_text())
    demo.write_sqlite(tmp_path, days=1, interval_s=3600)
    for db, tables in source["tables"].items():
        with sqlite3.connect(tmp_path / f"{db}.sqlite") as conn:
            for table, info in tables.items():
                got = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                assert [(row[1], row[2]) for row in got] == [
                    (name, SQLITE_OF_INFO[kind]) for name, kind in info["columns"]
                ], (db, table)
        conn.close()


def test_write_sqlite(tmp_path) -> None:
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")
    declared = {"timestamptz": "TIMESTAMP", "int4": "INTEGER", "float8": "REAL", "text": "TEXT"}
    paths = demo.write_sqlite(tmp_path, days=1, interval_s=60)
    assert [p.name for p in paths] == ["ess1.sqlite", "ess2.sqlite"]
    for path, site in zip(paths, ("1", "2"), strict=True):
        with sqlite3.connect(path) as conn:
            for table, columns in demo.SCHEMAS[site].items():
                info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                assert [(row[1], row[2]) for row in info] == [
                    (name, declared[kind]) for name, kind in columns
                ]
                indexed = conn.execute(f'PRAGMA index_list("{table}")').fetchall()
                assert len(indexed) == 1
                stamps = [r[0] for r in conn.execute(f'SELECT "TIMESTAMP" FROM "{table}"')]
                assert stamps[0] == "2022-08-31 15:00:00"
                assert all(stamp.match(s) for s in stamps)
                expected = gen(site, table)
                assert len(stamps) == expected.num_rows
                float_col = next(name for name, kind in columns if kind == "float8")
                nulls = conn.execute(
                    f'SELECT count(*) FROM "{table}" WHERE "{float_col}" IS NULL'
                ).fetchone()[0]
                assert nulls == expected.column(float_col).null_count
        conn.close()
    before = paths[0].read_bytes()
    assert demo.write_sqlite(tmp_path, days=1, interval_s=60, seed=1) == paths
    assert paths[0].read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ess1.sqlite", "ess2.sqlite"]


def _content_digest(path: Path) -> str:
    """sha256 over the schema and every row, in insertion order, of one SQLite file."""
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name"):
            digest.update(repr((name, sql)).encode())
            if sql.startswith("CREATE TABLE"):
                for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                    digest.update(repr(row).encode())
    conn.close()
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("options", "digests"),
    [
        pytest.param(
            {"days": 2, "interval_s": 60},
            (
                "cba8eb3491a88a1998d30365dec8d5782726cb95639d1d72bec03928b85ed309",
                "9bfae15003f85682e45fd1d1af9d425f74a3dc9a6c1fe4c15ab76ed5a121d836",
            ),
            id="two-days-a-minute",
        ),
        pytest.param(
            {"days": 1, "interval_s": 600, "seed": 7, "tz": "Europe/Berlin"},
            (
                "f3ccc661f6d9eb2fc7c5c10aef1b2c9c12dba6226a4aecef0aa10ab0a2ecca74",
                "c2320a13cbdf05cd2505040145a9a2c4d7aa3eaa11845fd95925a1b0b8463eb9",
            ),
            id="seed-and-zone",
        ),
    ],
)
def test_the_demo_databases_keep_their_content(
    tmp_path: Path, options: dict, digests: tuple[str, str]
) -> None:
    # Recorded from the data as published; any change to the model shows here first.
    paths = demo.write_sqlite(tmp_path, **options)
    assert tuple(_content_digest(path) for path in paths) == digests
