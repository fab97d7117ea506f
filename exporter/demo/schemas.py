"""The demo's tables: every column of the seed service's two-site schema, named and typed."""

from __future__ import annotations

import datetime

from ..errors import ConfigError

__all__ = ["DEFAULT_START", "KEYS", "SCHEMAS", "keys_for", "table_schema"]

DEFAULT_START = datetime.date(2022, 9, 1)


def _floats(*names: str) -> list[tuple[str, str]]:
    return [(name, "float8") for name in names]


def _ints(*names: str) -> list[tuple[str, str]]:
    return [(name, "int4") for name in names]


_TS = [("TIMESTAMP", "timestamptz")]

# Every table has the seed service's columns, named and ordered as its models and schema
# (the reference's schema.sql and ess/models.py): tests/test_demo.py compares them.
_BANK_1 = [
    *_TS,
    *_ints("BANK_ID"),
    *_floats(
        "BANK_SOC",
        "BANK_SOH",
        "BANK_DC_VOLT",
        "BANK_DC_CURRENT",
        "MAX_CELL_VOLTAGE_OF_BANK",
        "MIN_CELL_VOLTAGE_OF_BANK",
        "MAX_CELL_TEMPERATURE_OF_BANK",
        "MIN_CELL_TEMPERATURE_OF_BANK",
        "BANK_POWER",
    ),
]
_RACK_1 = [
    *_TS,
    *_ints("BANK_ID", "RACK_ID"),
    *_floats(
        "RACK_SOC",
        "RACK_SOH",
        "RACK_VOLTAGE",
        "RACK_CURRENT",
        "RACK_MAX_CELL_VOLTAGE",
        "RACK_MAX_CELL_VOLTAGE_POSITION",
        "RACK_MIN_CELL_VOLTAGE",
        "RACK_MIN_CELL_VOLTAGE_POSITION",
        "RACK_CELL_VOLTAGE_GAP",
        "RACK_CELL_VOLTAGE_AVERAGE",
        "RACK_MAX_CELL_TEMPERATURE",
        "RACK_MAX_CELL_TEMPERATURE_POSITION",
        "RACK_MIN_CELL_TEMPERATURE",
        "RACK_MIN_CELL_TEMPERATURE_POSITION",
        "RACK_CELL_TEMPERATURE_GAP",
    ),
]

SCHEMAS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "1": {
        "bank": _BANK_1,
        "rack": _RACK_1,
        "pcs": [
            *_TS,
            *_ints("BANK_ID"),
            *_floats(
                "PCS_AC_L1_THD",
                "PCS_AC_L2_THD",
                "PCS_AC_L3_THD",
                "SYSTEM_TEMPERATURE_MAX",
                "DC_VOLTAGE_1",
                "DC_VOLTAGE_2",
                "DC_CURRENT",
                "DC_POWER",
                "AC_FREQUENCY",
            ),
        ],
        "etc": [*_TS, *_floats("SENSOR1_TEMPERATURE", "SENSOR1_HUMIDITY")],
    },
    "2": {
        "bank": [
            *_BANK_1,
            *_floats(
                "MAX_MODULE_TEMPERATURE",
                "MIN_MODULE_TEMPERATURE",
                "MAX_MODULE_HUMIDITY",
                "MIN_MODULE_HUMIDITY",
            ),
            *_ints("RACK_TRAY_VOLTAGE_IMBALANCE_WARNING"),
            ("MASTER_RACK_COMMUNICATION_FAULT", "text"),
            *_ints(
                "BATTERY_STATUS_FOR_STANDBY",
                "BATTERY_STATUS_FOR_DISCHARGE",
                "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS",
                "CHARGING_STOP_OF_STATUS",
                "RACK_TEMPERATURE_IMBALANCE_WARNING",
                "RACK_UNDER_TEMPERATURE_WARNING",
                "RACK_OVER_TEMPERATURE_WARNING",
                "RACK_VOLTAGE_IMBALANCE_WARNING",
            ),
        ],
        "rack": [
            *_RACK_1,
            *_floats(
                "RACK_MAX_MODULE_TEMPERATURE",
                "RACK_MAX_MODULE_TEMPERATURE_POSITION",
                "RACK_MIN_MODULE_TEMPERATURE",
                "RACK_MIN_MODULE_TEMPERATURE_POSITION",
                "RACK_MAX_MODULE_HUMIDITY",
                "RACK_MAX_MODULE_HUMIDITY_POSITION",
                "RACK_MIN_MODULE_HUMIDITY",
                "RACK_MIN_MODULE_HUMIDITY_POSITION",
            ),
            # Mixed case and the "VOLATGE" typo are as in the real source: keep them.
            *_ints("RACK_STATUS_FOR_Online", "RACK_TRAY_VOLATGE_IMBALANCE_WARNING"),
            ("RACK_MODULE_FAULT", "text"),
        ],
        "pcs": [
            *_TS,
            *_floats(
                "AI_VDC",
                "AI_IDC",
                "AI_PDC",
                "AI_FREQ",
                "AI_VAB_RMS",
                "AI_VBC_RMS",
                "AI_VCA_RMS",
                "AI_IAS_RMS",
                "AI_IBS_RMS",
                "AI_ICS_RMS",
                "AI_SAC",
                "AI_PAC",
                "AI_QAC",
                "AI_FF",  # the power factor; the seed's model names it so
                "AI_C_KWH_ACH",
                "AI_C_KWH_ACL",
                "AI_D_KWH_ACH",
                "AI_D_KWH_ACL",
            ),
        ],
        "etc": [
            *_TS,
            *_floats(
                "SENSOR1_TEMPERATURE",
                "SENSOR1_HUMIDITY",
                "SENSOR2_TEMPERATURE",
                "SENSOR2_HUMIDITY",
                "ACTIVE_POWER_TOTAL",
                "ACTIVE_ENERGY_TOTAL_HIGH",
            ),
        ],
    },
}

KEYS: dict[str, tuple[str, ...]] = {
    "bank": ("BANK_ID",),
    "rack": ("BANK_ID", "RACK_ID"),
    "pcs": ("BANK_ID",),
    "etc": (),
}


def keys_for(site: str, table: str) -> tuple[str, ...]:
    """The key columns (besides TIMESTAMP) that ``site``'s ``table`` actually has."""
    columns = {name for name, _ in table_schema(site, table)}
    return tuple(key for key in KEYS[table] if key in columns)


def table_schema(site: str, table: str) -> list[tuple[str, str]]:
    if site not in SCHEMAS:
        raise ConfigError(f"demo: unknown site {site!r}; use one of {sorted(SCHEMAS)}")
    if table not in SCHEMAS[site]:
        raise ConfigError(f"demo: unknown table {table!r}; use one of {sorted(SCHEMAS[site])}")
    return SCHEMAS[site][table]
