"""The demo's tables, one function per table (and per site where they differ), and `generate`.

Each table function returns one local day as flat columns (TIMESTAMP excluded) and the
rows per tick. The random streams are drawn in a fixed order per table and day: keep it,
or every value after a moved draw changes.
"""

from __future__ import annotations

import datetime
import math
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import ConfigError
from .measure import Events, Racks, comm_fault_texts, measure_racks, site_events, wander
from .model import (
    AUX_KW,
    CHARGE,
    DAY_S,
    DUP_RATE,
    ETA,
    NULL_RATE,
    R_INT,
    S_ETC,
    S_EVENTS,
    S_PCS,
    S_RACKS,
    SITES,
    TABLE_STREAM,
    Params,
    Site,
    Truth,
    day_rng,
    site_params,
    truth,
)
from .schemas import table_schema

__all__ = ["generate"]

Columns = tuple[dict[str, np.ndarray], int]


@dataclass(frozen=True)
class _Day:
    """What every table of a site derives its values from, for one local day."""

    site: Site
    p: Params
    tr: Truth
    seed: int
    ordinal: int
    n: int
    interval_s: int


def _by_bank(x: np.ndarray, site: Site, how: str) -> np.ndarray:
    # Racks are ordered bank by bank, so (T, R) -> (T, B, racks per bank).
    grouped = x.reshape(x.shape[0], site.banks, site.racks_per_bank)
    return getattr(grouped, how)(axis=2)


def _measured(day: _Day) -> tuple[Racks, Events | None]:
    """The rack measurements (rack and bank rows share them) and, on site 2, the events."""
    site, seed, ordinal, n = day.site, day.seed, day.ordinal, day.n
    m = measure_racks(day.p, day.tr, day_rng(seed, site.no, S_RACKS, ordinal), site.no == 2)
    ev = None
    if site.no == 2:  # site 1 has no flag or fault columns
        ev = site_events(site, day_rng(seed, site.no, S_EVENTS, ordinal), n, day.interval_s)
    return m, ev


def _rack(day: _Day) -> Columns:
    site, p, n = day.site, day.p, day.n
    m, ev = _measured(day)
    cols = {
        "BANK_ID": np.broadcast_to(p.bank_of, (n, site.racks)),
        "RACK_ID": np.broadcast_to(p.rack_no, (n, site.racks)),
        "RACK_SOC": np.round(m.soc, 1),
        "RACK_SOH": np.round(m.soh, 1),
        "RACK_VOLTAGE": np.round(m.volt, 1),
        "RACK_CURRENT": np.round(m.current, 1),
        "RACK_MAX_CELL_VOLTAGE": np.round(m.vmax, 3),
        "RACK_MAX_CELL_VOLTAGE_POSITION": m.vmax_pos,
        "RACK_MIN_CELL_VOLTAGE": np.round(m.vmin, 3),
        "RACK_MIN_CELL_VOLTAGE_POSITION": m.vmin_pos,
        # Gaps are between the rounded extremes, as a BMS reports them.
        "RACK_CELL_VOLTAGE_GAP": np.round(np.round(m.vmax, 3) - np.round(m.vmin, 3), 3),
        "RACK_CELL_VOLTAGE_AVERAGE": np.round(m.vavg, 3),
        "RACK_MAX_CELL_TEMPERATURE": np.round(m.tmax, 1),
        "RACK_MAX_CELL_TEMPERATURE_POSITION": m.tmax_pos,
        "RACK_MIN_CELL_TEMPERATURE": np.round(m.tmin, 1),
        "RACK_MIN_CELL_TEMPERATURE_POSITION": m.tmin_pos,
        "RACK_CELL_TEMPERATURE_GAP": np.round(np.round(m.tmax, 1) - np.round(m.tmin, 1), 1),
    }
    if site.no == 2:
        idx = np.where(ev.rack_module, np.arange(1, site.racks + 1), 0)
        hot, cold, wet, dry = m.mod_pos
        cols |= {
            "RACK_MAX_MODULE_TEMPERATURE": np.round(m.mod_tmax, 1),
            "RACK_MAX_MODULE_TEMPERATURE_POSITION": hot,
            "RACK_MIN_MODULE_TEMPERATURE": np.round(m.mod_tmin, 1),
            "RACK_MIN_MODULE_TEMPERATURE_POSITION": cold,
            "RACK_MAX_MODULE_HUMIDITY": np.round(m.hmax, 1),
            "RACK_MAX_MODULE_HUMIDITY_POSITION": wet,
            "RACK_MIN_MODULE_HUMIDITY": np.round(m.hmin, 1),
            "RACK_MIN_MODULE_HUMIDITY_POSITION": dry,
            "RACK_STATUS_FOR_Online": (~ev.rack_offline).astype(np.int32),
            "RACK_TRAY_VOLATGE_IMBALANCE_WARNING": ev.rack_tray.astype(np.int32),
            "RACK_MODULE_FAULT": ev.module_text[idx],
        }
    return {k: v.reshape(-1) for k, v in cols.items()}, site.racks


def _bank(day: _Day) -> Columns:
    site, tr, n = day.site, day.tr, day.n
    m, ev = _measured(day)
    # Bank rows aggregate the (unrounded) rack measurements of the same tick.
    volt = _by_bank(m.volt, site, "mean")
    current = _by_bank(m.current, site, "sum")
    cols = {
        "BANK_ID": np.broadcast_to(np.arange(1, site.banks + 1, dtype=np.int32), volt.shape),
        "BANK_SOC": np.round(_by_bank(m.soc, site, "mean"), 1),
        "BANK_SOH": np.round(_by_bank(np.ascontiguousarray(m.soh), site, "mean"), 1),
        "BANK_DC_VOLT": np.round(volt, 1),
        "BANK_DC_CURRENT": np.round(current, 1),
        "BANK_POWER": np.round(volt * current / 1000.0, 1),
        "MAX_CELL_VOLTAGE_OF_BANK": np.round(_by_bank(m.vmax, site, "max"), 3),
        "MIN_CELL_VOLTAGE_OF_BANK": np.round(_by_bank(m.vmin, site, "min"), 3),
        "MAX_CELL_TEMPERATURE_OF_BANK": np.round(_by_bank(m.tmax, site, "max"), 1),
        "MIN_CELL_TEMPERATURE_OF_BANK": np.round(_by_bank(m.tmin, site, "min"), 1),
    }
    if site.no == 2:
        weights = 1 << np.arange(site.racks_per_bank)
        comm = ev.rack_comm.reshape(n, site.banks, site.racks_per_bank)
        comm_mask = (comm * weights).sum(axis=2)
        idle = (tr.charge == 0) & (tr.discharge == 0)
        stopped = (tr.s >= CHARGE[1]) & (tr.s < CHARGE[1] + 600)
        shape = (n, site.banks)

        def flag(x: np.ndarray) -> np.ndarray:
            return np.broadcast_to(x.reshape(n, -1), shape).astype(np.int32)

        cols |= {
            "MAX_MODULE_TEMPERATURE": np.round(_by_bank(m.mod_tmax, site, "max"), 1),
            "MIN_MODULE_TEMPERATURE": np.round(_by_bank(m.mod_tmin, site, "min"), 1),
            "MAX_MODULE_HUMIDITY": np.round(_by_bank(m.hmax, site, "max"), 1),
            "MIN_MODULE_HUMIDITY": np.round(_by_bank(m.hmin, site, "min"), 1),
            "RACK_TEMPERATURE_IMBALANCE_WARNING": flag(ev.bank_temp),
            "RACK_UNDER_TEMPERATURE_WARNING": flag(ev.bank_under),
            "RACK_OVER_TEMPERATURE_WARNING": flag(ev.bank_over),
            "RACK_VOLTAGE_IMBALANCE_WARNING": flag(ev.bank_volt),
            "RACK_TRAY_VOLTAGE_IMBALANCE_WARNING": flag(_by_bank(ev.rack_tray, site, "any")),
            "MASTER_RACK_COMMUNICATION_FAULT": comm_fault_texts(site.racks_per_bank)[comm_mask],
            "BATTERY_STATUS_FOR_STANDBY": flag(idle),
            "BATTERY_STATUS_FOR_DISCHARGE": flag(tr.discharge > 0),
            "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS": flag(comm_mask > 0),
            "CHARGING_STOP_OF_STATUS": flag(stopped),
        }
    return {k: v.reshape(-1) for k, v in cols.items()}, site.banks


def _grid(day: _Day, stream: int) -> tuple[np.random.Generator, np.ndarray]:
    """The PCS or sensor stream of the day, and the grid frequency drawn first from it."""
    rng = day_rng(day.seed, day.site.no, stream, day.ordinal)
    return rng, 60.0 + 0.012 * wander(rng, day.tr.s)


def _pcs_of_banks(day: _Day) -> Columns:
    """Site 1's PCS: one row per bank."""
    site, tr, n = day.site, day.tr, day.n
    rng, freq = _grid(day, S_PCS)
    b = site.banks
    current = _by_bank(tr.current, site, "sum")
    volt = _by_bank(tr.ocv + R_INT * tr.current, site, "mean")
    load = np.abs(current) / (40.0 * site.racks_per_bank)
    v1 = volt + rng.normal(0, 0.4, (n, b))
    dc_current = current + rng.normal(0, 0.5, (n, b))
    thd = 1.4 + 2.0 * (1.0 - np.clip(load, 0, 1))[:, :, None] + rng.normal(0, 0.1, (n, b, 3))
    thd = np.round(np.clip(thd, 1.0, 4.0), 2)
    sys_t = tr.ambient[:, None] + 2.0 + 4.0 * tr.heat[:, None] + rng.normal(0, 0.1, (n, b))
    ac_f = freq[:, None] + rng.normal(0, 0.003, (n, b))
    cols = {
        "BANK_ID": np.broadcast_to(np.arange(1, b + 1, dtype=np.int32), (n, b)),
        "PCS_AC_L1_THD": thd[:, :, 0],
        "PCS_AC_L2_THD": thd[:, :, 1],
        "PCS_AC_L3_THD": thd[:, :, 2],
        "SYSTEM_TEMPERATURE_MAX": np.round(sys_t, 1),
        "DC_VOLTAGE_1": np.round(v1, 1),
        "DC_VOLTAGE_2": np.round(volt + 0.6 + rng.normal(0, 0.4, (n, b)), 1),
        "DC_CURRENT": np.round(dc_current, 1),
        "DC_POWER": np.round(v1 * dc_current / 1000.0, 1),
        "AC_FREQUENCY": np.round(np.clip(ac_f, 59.98, 60.02), 3),
    }
    return {k: v.reshape(-1) for k, v in cols.items()}, b


def _pcs_of_site(day: _Day) -> Columns:
    """Site 2's PCS: one row per tick, with the AC side and energy counters."""
    tr, n = day.tr, day.n
    rng, freq = _grid(day, S_PCS)
    vdc = (tr.ocv + R_INT * tr.current).mean(axis=1) + rng.normal(0, 0.4, n)
    idc = tr.current.sum(axis=1) + rng.normal(0, 0.6, n)
    p_ac = tr.p_ac + rng.normal(0, 0.3, n)
    q_ac = 1.5 * wander(rng, tr.s) + rng.normal(0, 0.3, n)
    s_ac = np.hypot(p_ac, q_ac)
    v_ll = 380.0 + 1.5 * wander(rng, tr.s)[:, None] + np.array([0.0, 0.8, -0.5])
    v_ll = v_ll + rng.normal(0, 0.3, (n, 3))
    i_ph = s_ac[:, None] * 1000.0 / (math.sqrt(3) * v_ll) * np.array([1.0, 1.01, 0.99])
    i_ph = np.abs(i_ph + rng.normal(0, 0.2, (n, 3)))
    cols = {
        "AI_VDC": np.round(vdc, 1),
        "AI_IDC": np.round(idc, 1),
        "AI_PDC": np.round(vdc * idc / 1000.0, 1),
        "AI_FREQ": np.round(np.clip(freq + rng.normal(0, 0.003, n), 59.98, 60.02), 3),
        "AI_VAB_RMS": np.round(v_ll[:, 0], 1),
        "AI_VBC_RMS": np.round(v_ll[:, 1], 1),
        "AI_VCA_RMS": np.round(v_ll[:, 2], 1),
        "AI_IAS_RMS": np.round(i_ph[:, 0], 1),
        "AI_IBS_RMS": np.round(i_ph[:, 1], 1),
        "AI_ICS_RMS": np.round(i_ph[:, 2], 1),
        "AI_SAC": np.round(s_ac, 1),
        "AI_PAC": np.round(p_ac, 1),
        "AI_QAC": np.round(q_ac, 1),
        "AI_FF": np.round(np.abs(p_ac) / np.maximum(s_ac, 1e-9), 3),
        # Counters: *_ACH in MWh, *_ACL in kWh, both cumulative (never wrap).
        "AI_C_KWH_ACH": np.round(tr.kwh_c / ETA / 1000.0, 3),
        "AI_C_KWH_ACL": np.round(tr.kwh_c / ETA, 1),
        "AI_D_KWH_ACH": np.round(tr.kwh_d * ETA / 1000.0, 3),
        "AI_D_KWH_ACL": np.round(tr.kwh_d * ETA, 1),
    }
    return cols, 1


def _etc(day: _Day) -> Columns:
    site, tr, n = day.site, day.tr, day.n
    rng, _ = _grid(day, S_ETC)  # the frequency is drawn, unused, to keep the stream's order
    temp1 = tr.ambient + rng.normal(0, 0.1, n)
    hum1 = tr.humidity + rng.normal(0, 0.3, n)
    cols = {
        "SENSOR1_TEMPERATURE": np.round(np.clip(temp1, 22.0, 35.0), 1),
        "SENSOR1_HUMIDITY": np.round(np.clip(hum1, 30.0, 60.0), 1),
    }
    if site.no == 2:
        temp2 = tr.ambient + 0.8 + rng.normal(0, 0.1, n)
        hum2 = tr.humidity - 1.5 + rng.normal(0, 0.3, n)
        aux = AUX_KW * (1.0 + 0.35 * np.sin(2 * math.pi * (tr.s / DAY_S - 0.375)))
        cols |= {
            "SENSOR2_TEMPERATURE": np.round(np.clip(temp2, 22.0, 35.0), 1),
            "SENSOR2_HUMIDITY": np.round(np.clip(hum2, 30.0, 60.0), 1),
            "ACTIVE_POWER_TOTAL": np.round(tr.p_ac + aux + rng.normal(0, 0.2, n), 1),
            "ACTIVE_ENERGY_TOTAL_HIGH": np.round(tr.kwh_meter / 1000.0, 3),  # MWh
        }
    return cols, 1


_TABLES: dict[tuple[str, int], Callable[[_Day], Columns]] = {
    ("rack", 1): _rack,
    ("rack", 2): _rack,
    ("bank", 1): _bank,
    ("bank", 2): _bank,
    ("pcs", 1): _pcs_of_banks,
    ("pcs", 2): _pcs_of_site,
    ("etc", 1): _etc,
    ("etc", 2): _etc,
}


def _table_day(
    site_id: str, table: str, seed: int, ordinal: int, n: int, interval_s: int
) -> Columns:
    """One local day of ``table`` as flat columns (TIMESTAMP excluded) and rows per tick."""
    site = SITES[site_id]
    p = site_params(site_id, seed)
    day = _Day(site, p, truth(p, ordinal, n, interval_s), seed, ordinal, n, interval_s)
    return _TABLES[(table, site.no)](day)


_ARROW_TYPES = {
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "int4": pa.int32(),
    "float8": pa.float64(),
    "text": pa.string(),
}


def _midnights_us(start: datetime.date, days: int, tz: str) -> list[int]:
    """UTC microseconds of local midnight for each day and the day after the last."""
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"demo: unknown time zone {tz!r}; use an IANA name") from exc
    out = []
    for d in range(days + 1):
        local = datetime.datetime.combine(start + datetime.timedelta(days=d), datetime.time())
        utc = local.replace(tzinfo=zone).astimezone(datetime.UTC)
        out.append(int(utc.timestamp()) * 1_000_000)
    return out


def generate(
    site: str,
    table: str,
    start: datetime.date,
    days: int,
    *,
    seed: int = 0,
    interval_s: int = 10,
    tz: str = "Asia/Seoul",
) -> pa.Table:
    """Synthetic rows of ``site``'s ``table`` for ``days`` local days from ``start``.

    Ticks run every ``interval_s`` seconds from each local midnight in ``tz``; TIMESTAMP is
    the UTC instant. Rows are ordered by TIMESTAMP then keys, with duplicates adjacent.
    """
    columns = table_schema(site, table)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"demo: seed must be a non-negative integer, got {seed!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"demo: days must be a positive integer, got {days!r}")
    if isinstance(interval_s, bool) or not isinstance(interval_s, int):
        raise ConfigError(f"demo: interval_s must be an integer, got {interval_s!r}")
    if not 1 <= interval_s <= 86400:
        raise ConfigError(f"demo: interval_s must be within 1..86400, got {interval_s}")

    midnights = _midnights_us(start, days, tz)
    floats = [name for name, kind in columns if kind == "float8"]
    parts: dict[str, list[np.ndarray]] = {name: [] for name, _ in columns}
    null_parts: dict[str, list[np.ndarray]] = {name: [] for name in floats}
    for d in range(days):
        ordinal = (start + datetime.timedelta(days=d)).toordinal()
        day_s = (midnights[d + 1] - midnights[d]) // 1_000_000  # 23-25 h across DST
        n = -(-day_s // interval_s)
        cols, per_tick = _table_day(site, table, seed, ordinal, n, interval_s)
        ticks = midnights[d] + np.arange(n, dtype=np.int64) * (interval_s * 1_000_000)
        cols = {"TIMESTAMP": np.repeat(ticks, per_tick), **cols}
        rows = n * per_tick

        rng = day_rng(seed, SITES[site].no, TABLE_STREAM[table], ordinal)
        nulls = rng.random((rows, len(floats))) < NULL_RATE
        # Each row appears once, a few twice in a row: np.repeat keeps the order.
        take = np.repeat(np.arange(rows), 1 + (rng.random(rows) < DUP_RATE))
        for name, _ in columns:
            parts[name].append(np.asarray(cols[name])[take])
        for j, name in enumerate(floats):
            null_parts[name].append(nulls[take, j])

    arrays = []
    for name, kind in columns:
        values = np.concatenate(parts[name])
        if kind == "float8":
            arrays.append(pa.array(values, pa.float64(), mask=np.concatenate(null_parts[name])))
        elif kind == "timestamptz":
            arrays.append(pa.array(values, pa.int64()).cast(_ARROW_TYPES[kind]))
        elif kind == "int4":
            arrays.append(pa.array(values.astype(np.int32), pa.int32()))
        else:
            arrays.append(pa.array(values, pa.string()))
    schema = pa.schema([pa.field(name, _ARROW_TYPES[kind]) for name, kind in columns])
    return pa.Table.from_arrays(arrays, schema=schema)
