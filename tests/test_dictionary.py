"""The data dictionary: every column of the seed's tables described in English and Korean,
merged into the configuration, and carried into the manifests, the data package and the
site's pages."""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import pytest

from exporter import demo
from exporter.config import load, load_demo
from exporter.dictionary import builtin, load_dictionary
from exporter.errors import ConfigError
from tests.conftest import published_manifest

XHTML = "{http://www.w3.org/1999/xhtml}"
SEED_COLUMNS = sorted({name for s in demo.SCHEMAS.values() for t in s.values() for name, _ in t})


@pytest.mark.parametrize("column", SEED_COLUMNS)
def test_every_seed_column_has_an_english_and_a_korean_description(column: str) -> None:
    entry = builtin().columns[column]
    assert entry.en and entry.ko


def test_the_dictionary_describes_only_seed_columns_and_tables() -> None:
    assert sorted(builtin().columns) == SEED_COLUMNS
    assert sorted(builtin().tables) == ["bank", "etc", "pcs", "rack"]
    assert builtin().about.en and builtin().about.ko


@pytest.mark.parametrize(
    ("column", "unit"),
    [
        ("RACK_SOC", "%"),
        ("RACK_VOLTAGE", "V"),
        ("BANK_POWER", "kW"),
        ("RACK_CELL_TEMPERATURE_GAP", "°C"),
        ("RACK_MAX_MODULE_HUMIDITY", "%RH"),
        ("AI_QAC", "kvar"),
        ("AI_C_KWH_ACH", "MWh"),
        ("AC_FREQUENCY", "Hz"),
        ("AI_FF", ""),
        ("RACK_MAX_CELL_VOLTAGE_POSITION", ""),
        ("RACK_STATUS_FOR_Online", ""),
    ],
    ids=lambda v: v or "none",
)
def test_units(column: str, unit: str) -> None:
    assert builtin().columns[column].unit == unit


def test_flags_and_fault_lists_say_what_their_values_mean() -> None:
    flags = [c for c in SEED_COLUMNS if c.endswith(("_WARNING", "_STATUS")) or "STATUS_FOR" in c]
    flags.append("CHARGING_STOP_OF_STATUS")
    assert len(set(flags)) == 11
    for name in set(flags):
        assert "(1 = " in builtin().columns[name].en, name
        assert "(1 = " in builtin().columns[name].ko, name
    for name in ("MASTER_RACK_COMMUNICATION_FAULT", "RACK_MODULE_FAULT"):
        assert "JSON text; [] when none" in builtin().columns[name].en
        assert "JSON 텍스트" in builtin().columns[name].ko


def test_the_demo_config_uses_it_and_its_own_entries_win(tmp_path: Path) -> None:
    rack = load_demo().site("2").table("rack")
    assert rack.columns["RACK_SOC"].unit == "%"
    assert rack.columns["RACK_SOC"].description_ko == "랙 충전 상태(SOC)"
    config = tmp_path / "c.toml"
    config.write_text(
        '[dataset]\ndictionary = "builtin"\n[sites.1]\ndsn = "sqlite:x.sqlite"\n'
        '[sites.1.tables.rack.columns.RACK_SOC]\ndescription = "SOC as the BMS reports it"\n'
    )
    soc = load(config).site("1").table("rack").columns["RACK_SOC"]
    assert (soc.description, soc.unit, soc.description_ko) == (
        "SOC as the BMS reports it",
        "%",
        "랙 충전 상태(SOC)",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[columns]\nX = 1\n", "columns.X: must be a table"),
        ('[columns]\nX = { ko = "엑스" }\n', "columns.X.en: is required"),
        ('[columns]\nX = { en = "x", note = "n" }\n', "columns.X.note: unknown key"),
        ("[tabels]\n", "unknown key 'tabels'"),
        ("[columns\n", "not valid TOML"),
    ],
    ids=["not-a-table", "no-english", "unknown-key", "unknown-section", "bad-toml"],
)
def test_a_bad_dictionary_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "dict.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_dictionary("dict.toml", tmp_path / "ess.toml")
    with pytest.raises(ConfigError, match=r"dataset.dictionary: cannot read .*missing.toml"):
        load_dictionary("missing.toml", tmp_path / "ess.toml")


def test_the_publish_carries_it(demo_published: Path) -> None:
    column = next(
        c
        for c in published_manifest(demo_published, "2").tables["rack"].columns
        if c.source == "RACK_MODULE_FAULT"
    )
    assert column.description.startswith("Fault list: the rack's faulty modules")
    assert column.description_ko.startswith("고장 목록")

    package = json.loads((demo_published / "datapackage.json").read_text())
    resource = next(r for r in package["resources"] if r["name"] == "1-rack-csv")
    soc = next(f for f in resource["schema"]["fields"] if f["name"] == "rack_soc")
    assert soc == {
        "name": "rack_soc",
        "type": "number",
        "description": "Rack state of charge / 랙 충전 상태(SOC)",
        "unit": "%",
    }
    catalog = json.loads((demo_published / "catalog.json").read_text())
    assert catalog["dictionary"]["tables"]["pcs"]["ko"].startswith("전력변환장치(PCS")


def _rows(html: Path, table_id: str) -> list[list[str]]:
    tree = html5lib.parse(html.read_bytes(), transport_encoding="utf-8")
    table = next(t for t in tree.iter(f"{XHTML}table") if t.get("id") == table_id)
    return [
        ["".join(cell.itertext()).strip() for cell in row]
        for row in table.iter(f"{XHTML}tr")
        if row.find(f"{XHTML}td") is not None
    ]


def test_table_pages_show_every_column_and_site_pages_the_purposes(demo_published: Path) -> None:
    rows = _rows(demo_published / "sites/2/bank/index.html", "schema")
    assert len(rows) == 25
    by_name = {row[0]: row for row in rows}
    assert by_name["rack_over_temperature_warning"][4:] == [
        "",
        "Warning flag: a rack of the bank is above its temperature limit (1 = raised, 0 = not)"
        "경고 플래그: 뱅크 내 랙 고온 (1 = 발생, 0 = 없음)",
    ]
    assert all(row[5] for row in rows)  # every column described
    purposes = {row[0]: row[1] for row in _rows(demo_published / "sites/1/index.html", "tables")}
    assert purposes["etc"].startswith("Other sensors and meters of the site")
    assert sorted(purposes) == ["bank", "etc", "pcs", "rack"]
