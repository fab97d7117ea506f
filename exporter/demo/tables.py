"""Embedded demo source: deterministic synthetic ESS operating data for two sites.

The data imitates the shape of a real two-site schema (upper-case, partly misspelled
column names; one bank of 8 racks on site 1, two banks of 4 racks on site 2) so the whole
exporter can be exercised without a database server:

* ``generate`` returns one site table for a span of local days as a pyarrow table;
* ``write_sqlite`` writes ``ess1.sqlite`` and ``ess2.sqlite`` with every table.

The values follow a daily schedule in local time: the racks charge at night (01:00-06:00),
discharge in the afternoon peak (13:00-18:00) and idle otherwise. Banks aggregate their
racks, PCS values follow the bank power, temperatures and humidity follow a daily cycle
and the energy counters never decrease. Like the real data, about 0.1 % of the float values
are NULL and about 0.05 % of the rows are emitted twice in a row.

Every local day is generated from its own random streams, keyed by ``seed``, site, stream
and the day's date, so a day's rows are the same whatever ``start``/``days`` window asks for
it (for a given ``interval_s`` and ``tz``), and the energy counters are a closed-form sum
of the earlier days rather than state carried through the window.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import pathlib
import sqlite3
import zoneinfo
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from exporter.errors import ConfigError

__all__ = ["DEFAULT_START", "KEYS", "SCHEMAS", "generate", "keys_for", "write_sqlite"]

DEFAULT_START = datetime.date(2022, 9, 1)

# --------------------------------------------------------------------------- schemas


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
    columns = {name for name, _ in _schema(site, table)}
    return tuple(key for key in KEYS[table] if key in columns)


_ARROW_TYPES = {
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "int4": pa.int32(),
    "float8": pa.float64(),
    "text": pa.string(),
}
_SQLITE_TYPES = {"timestamptz": "TIMESTAMP", "int4": "INTEGER", "float8": "REAL", "text": "TEXT"}

# --------------------------------------------------------------------------- model constants


@dataclass(frozen=True)
class _Site:
    no: int
    banks: int
    racks_per_bank: int

    @property
    def racks(self) -> int:
        return self.banks * self.racks_per_bank


_SITES = {"1": _Site(1, 1, 8), "2": _Site(2, 2, 4)}
_TABLE_STREAM = {"bank": 10, "rack": 11, "pcs": 12, "etc": 13}
# Site-wide streams: shared by all tables so a bank row aggregates the very rack rows.
_S_PARAMS, _S_RACKS, _S_EVENTS, _S_PCS, _S_ETC = 0, 1, 2, 3, 4

_CELLS = 180  # cells in series per rack: 180 x 3.79 V ~ 682 V
_MODULES = 10  # modules per rack (18 cells each); module positions run 1..10
_TEMP_SENSORS = 40  # cell temperature sensors per rack (4 per module)
_CAP_AH = 280.0
_OCV0, _OCV_K = 652.0, 0.68  # rack open-circuit voltage = OCV0 + OCV_K * SOC[%]
_R_INT = 0.09  # ohm: +-3.6 V at 40 A, so the voltage steps when current flows
_CHARGE = (1 * 3600.0, 6 * 3600.0)  # local seconds since midnight
_DISCHARGE = (13 * 3600.0, 18 * 3600.0)
_RAMP_S = 300.0
_ETA = 0.965  # one-way PCS efficiency between DC and AC
_AUX_KW = 4.0  # HVAC and auxiliaries behind the site meter
_EPOCH = datetime.date(2021, 1, 1).toordinal()  # commissioning: SOH fade and counters start
_E0_KWH = 2_000_000.0  # counter value at the epoch; large so earlier dates stay positive
_NULL_RATE = 0.001
_DUP_RATE = 0.0005
_DAY_S = 86400.0


@dataclass(frozen=True)
class _Params:
    """Per-site constants drawn once from the seed: what makes racks differ."""

    cap: np.ndarray  # (R,) Ah
    phase: np.ndarray  # (4, R) phases of the day-to-day SOC target wander
    i_bias: np.ndarray  # (R,) current sensor offset, A
    v_off: np.ndarray  # (R,) voltage offset, V
    t_off: np.ndarray  # (R,) temperature offset, degC
    h_off: np.ndarray  # (R,) humidity offset, %
    fade: np.ndarray  # (R,) SOH loss per year, %
    weak_cell: np.ndarray  # (R,) usual position of the minimum cell
    strong_cell: np.ndarray  # (R,) usual position of the maximum cell
    amb_phase: float
    hot_sensor: np.ndarray  # (R,) usual position of the maximum cell temperature
    cold_sensor: np.ndarray  # (R,) usual position of the minimum cell temperature
    bank_of: np.ndarray  # (R,) int32 BANK_ID
    rack_no: np.ndarray  # (R,) int32 RACK_ID


@functools.lru_cache(maxsize=32)
def _params(site: str, seed: int) -> _Params:
    s = _SITES[site]
    rng = _rng(seed, s.no, _S_PARAMS, 0)
    n = s.racks
    return _Params(
        cap=_CAP_AH * (1 + 0.02 * rng.uniform(-1, 1, n)),
        phase=rng.uniform(0, 2 * math.pi, (4, n)),
        i_bias=rng.normal(0, 0.05, n),
        v_off=rng.normal(0, 0.6, n),
        t_off=rng.normal(0, 0.3, n),
        h_off=rng.normal(0, 1.0, n),
        fade=rng.uniform(0.55, 0.85, n),
        weak_cell=rng.integers(1, _CELLS + 1, n),
        strong_cell=rng.integers(1, _CELLS + 1, n),
        amb_phase=float(rng.uniform(0, 2 * math.pi)),
        # Drawn after the others so the earlier constants keep their values.
        hot_sensor=rng.integers(1, _TEMP_SENSORS + 1, n),
        cold_sensor=rng.integers(1, _TEMP_SENSORS + 1, n),
        bank_of=np.repeat(np.arange(1, s.banks + 1, dtype=np.int32), s.racks_per_bank),
        rack_no=np.tile(np.arange(1, s.racks_per_bank + 1, dtype=np.int32), s.banks),
    )


def _rng(seed: int, site_no: int, stream: int, ordinal: int) -> np.random.Generator:
    # A SeedSequence over the tuple, not seed + offset: no two (seed, stream, day) collide,
    # and unlike hash() it is stable across processes.
    return np.random.default_rng([seed, site_no, stream, ordinal])


# --------------------------------------------------------------------------- noise-free model


def _soc_targets(p: _Params, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SOC (%) at local midnight (low) and after the night charge (high), per day and rack.

    A smooth function of the date, not a random walk, so any day can be computed alone
    and SOC stays in 15.5..24.5 / 85.5..92.5 however long the demo runs.
    """
    o = np.asarray(ordinals, dtype=np.float64)[:, None]
    lo = 20 + 3.0 * np.sin(0.37 * o + p.phase[0]) + 1.5 * np.sin(1.13 * o + p.phase[1])
    hi = 89 + 2.5 * np.sin(0.61 * o + p.phase[2]) + 1.0 * np.sin(0.89 * o + p.phase[3])
    return lo, hi


def _dc_kwh(p: _Params, soc0: np.ndarray, soc1: np.ndarray) -> np.ndarray:
    """|integral of OCV * I dt| in kWh moving each rack from soc0 to soc1, summed over racks.

    I dt = cap * 36 * dSOC (A s), so the integral of (OCV0 + K SOC) dSOC has a closed form.
    """
    e = p.cap * (_OCV0 * (soc1 - soc0) + _OCV_K * (soc1**2 - soc0**2) / 2) / 1e5
    return np.abs(e).sum(axis=-1)


def _day_kwh(p: _Params, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DC energy charged and discharged on each day."""
    lo, hi = _soc_targets(p, ordinals)
    lo_next, _ = _soc_targets(p, np.asarray(ordinals) + 1)
    return _dc_kwh(p, lo, hi), _dc_kwh(p, hi, lo_next)


def _counter_base(p: _Params, ordinal: int) -> tuple[float, float]:
    """DC charge/discharge counters at the start of a day: E0 plus all days since the epoch."""
    if ordinal >= _EPOCH:
        days, sign = np.arange(_EPOCH, ordinal), 1.0
    else:
        days, sign = np.arange(ordinal, _EPOCH), -1.0
    charged, discharged = _day_kwh(p, days)
    return _E0_KWH + sign * float(charged.sum()), _E0_KWH + sign * float(discharged.sum())


def _trapezoid(s: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    a, b = window
    return np.clip(np.minimum(s - a, b - s) / _RAMP_S, 0.0, 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _fraction(shape: np.ndarray) -> tuple[np.ndarray, float]:
    """Cumulative share of a window's shape reached at each tick, and the shape's sum."""
    total = float(shape.sum())
    if total <= 0:  # interval longer than the window: nothing is scheduled
        return np.zeros_like(shape), 1.0
    return np.cumsum(shape) / total, total


@dataclass
class _Truth:
    """Noise-free state of a site over one local day (T ticks, R racks)."""

    s: np.ndarray  # (T,) local seconds since midnight
    charge: np.ndarray  # (T,) 0..1 charge schedule
    discharge: np.ndarray  # (T,) 0..1 discharge schedule
    soc: np.ndarray  # (T, R)
    current: np.ndarray  # (T, R) A, + charging
    ocv: np.ndarray  # (T, R) V
    p_dc: np.ndarray  # (T,) kW over all racks
    p_ac: np.ndarray  # (T,) kW at the grid side of the PCS
    heat: np.ndarray  # (T,) 0..1 thermal response to load, lagging the schedule
    ambient: np.ndarray  # (T,) degC
    humidity: np.ndarray  # (T,) %
    soh: np.ndarray  # (R,)
    kwh_c: np.ndarray  # (T,) cumulative DC kWh charged
    kwh_d: np.ndarray  # (T,) cumulative DC kWh discharged
    kwh_meter: np.ndarray  # (T,) cumulative kWh imported at the site meter


def _cumulative(base: float, day_total: float, increments: np.ndarray) -> np.ndarray:
    # Spread the closed-form day total over the day in proportion to the power, so the
    # counter ends the day exactly where the next day's base starts: never decreasing.
    done = np.cumsum(increments)
    if done[-1] <= 0:
        return np.full(increments.shape, base)
    return base + day_total * done / done[-1]


def _truth(p: _Params, ordinal: int, n: int, interval_s: int) -> _Truth:
    s = np.arange(n, dtype=np.float64) * interval_s
    charge, discharge = _trapezoid(s, _CHARGE), _trapezoid(s, _DISCHARGE)
    lo, hi = _soc_targets(p, np.array([ordinal, ordinal + 1]))
    lo0, hi0, lo1 = lo[0], hi[0], lo[1]
    f_c, sum_c = _fraction(charge)
    f_d, sum_d = _fraction(discharge)
    # SOC integrates the current exactly: each window moves SOC from one target to the next.
    soc = lo0 + (hi0 - lo0) * f_c[:, None] - (hi0 - lo1) * f_d[:, None]
    amp_c = (hi0 - lo0) * p.cap * 36.0 / (sum_c * interval_s)  # ~ 40 A
    amp_d = (hi0 - lo1) * p.cap * 36.0 / (sum_d * interval_s)
    current = amp_c * charge[:, None] - amp_d * discharge[:, None]
    ocv = _OCV0 + _OCV_K * soc
    p_dc = (ocv * current).sum(axis=1) / 1000.0
    p_ac = np.where(p_dc > 0, p_dc / _ETA, p_dc * _ETA)

    day = 2 * math.pi * (s / _DAY_S - 0.375)  # sin peaks at 15:00 local
    drift = math.sin(0.21 * ordinal + p.amb_phase)
    ambient = 26.5 + 2.3 * np.sin(day) + 0.7 * drift
    humidity = 45.0 - 7.0 * np.sin(day) - 2.0 * drift
    heat = np.zeros_like(s)
    for a, b in (_CHARGE, _DISCHARGE):  # cells warm up ~10 min after load starts
        heat += _sigmoid((s - a - 600.0) / 500.0) - _sigmoid((s - b - 900.0) / 700.0)

    base_c, base_d = _counter_base(p, ordinal)
    day_c, day_d = _day_kwh(p, np.array([ordinal]))
    kwh_c = _cumulative(base_c, float(day_c[0]), np.maximum(p_dc, 0.0))
    kwh_d = _cumulative(base_d, float(day_d[0]), np.maximum(-p_dc, 0.0))
    # The site meter imports charging energy plus auxiliaries outside the discharge window.
    aux = _AUX_KW * (1.0 + 0.35 * np.sin(day))
    meter_day = float(day_c[0]) / _ETA + _AUX_KW * 19.0
    meter_base = _E0_KWH + (base_c - _E0_KWH) / _ETA + _AUX_KW * 19.0 * (ordinal - _EPOCH)
    kwh_meter = _cumulative(meter_base, meter_day, np.maximum(p_ac + aux, 0.0))

    years = (ordinal - _EPOCH) / 365.25
    soh = np.clip(99.5 - p.fade * years, 90.0, 100.0)
    return _Truth(
        s=s,
        charge=charge,
        discharge=discharge,
        soc=soc,
        current=current,
        ocv=ocv,
        p_dc=p_dc,
        p_ac=p_ac,
        heat=heat,
        ambient=ambient,
        humidity=humidity,
        soh=soh,
        kwh_c=kwh_c,
        kwh_d=kwh_d,
        kwh_meter=kwh_meter,
    )


# --------------------------------------------------------------------------- measurements


@dataclass
class _Racks:
    """Measured rack values over one day, each (T, R), before rounding."""

    soc: np.ndarray
    soh: np.ndarray
    volt: np.ndarray
    current: np.ndarray
    vmax: np.ndarray
    vmax_pos: np.ndarray
    vmin: np.ndarray
    vmin_pos: np.ndarray
    vavg: np.ndarray
    tmax: np.ndarray
    tmax_pos: np.ndarray
    tmin: np.ndarray
    tmin_pos: np.ndarray
    mod_tmax: np.ndarray
    mod_tmin: np.ndarray
    hmax: np.ndarray
    hmin: np.ndarray
    # Module positions (1.._MODULES) of the module extremes: site 2 only, else None.
    mod_pos: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None


def _positions(
    rng: np.random.Generator, tick: np.ndarray, usual: np.ndarray, count: int = _CELLS
) -> np.ndarray:
    """Position (1..count) per tick and rack: mostly the rack's usual one, changing a few times."""
    n_racks = usual.shape[0]
    bounds = np.sort(rng.uniform(0, tick[-1] + 1, (n_racks, 3)), axis=1)
    other = rng.integers(1, count + 1, (n_racks, 4))
    cand = np.where(rng.random((n_racks, 4)) < 0.75, usual[:, None], other)
    segment = (tick[:, None, None] >= bounds[None]).sum(axis=2)  # (T, R) in 0..3
    return cand[np.arange(n_racks)[None, :], segment].astype(np.float64)


def _racks(p: _Params, tr: _Truth, rng: np.random.Generator, modules: bool) -> _Racks:
    shape = tr.soc.shape
    current = tr.current + p.i_bias + rng.normal(0, 0.15, shape)
    volt = tr.ocv + _R_INT * tr.current + p.v_off + rng.normal(0, 0.3, shape)
    load = np.abs(tr.current) / 40.0
    edge = ((tr.soc - 50.0) / 50.0) ** 2  # cells spread more near empty and full
    cell = volt / _CELLS
    vmax = cell + 0.006 + 0.010 * load + 0.012 * edge + np.abs(rng.normal(0, 0.0015, shape))
    vmin = cell - 0.008 - 0.012 * load - 0.015 * edge - np.abs(rng.normal(0, 0.0015, shape))
    heat = tr.heat[:, None]
    rack_t = tr.ambient[:, None] + 0.6 + 2.0 * heat + p.t_off
    tmax = rack_t + 1.5 + 0.4 * heat + rng.normal(0, 0.08, shape)
    tmin = rack_t - 1.1 + rng.normal(0, 0.08, shape)
    hum = tr.humidity[:, None] + p.h_off
    hmax = hum + 1.8 + rng.normal(0, 0.1, shape)
    hmin = hum - 1.8 + rng.normal(0, 0.1, shape)
    tick = np.arange(shape[0])
    vmax_pos = _positions(rng, tick, p.strong_cell)
    vmin_pos = _positions(rng, tick, p.weak_cell)

    soc = np.clip(tr.soc + rng.normal(0, 0.02, shape), 5.0, 95.0)
    # The draws below come after all the earlier ones, which keep their values.
    tmax_pos = _positions(rng, tick, p.hot_sensor, _TEMP_SENSORS)
    tmin_pos = _positions(rng, tick, p.cold_sensor, _TEMP_SENSORS)
    mod_pos = None
    if modules:
        # A module holds 4 temperature sensors: the hottest/coldest module usually holds
        # the hottest/coldest sensor; humidity extremes wander on their own.
        usual_wet, usual_dry = rng.integers(1, _MODULES + 1, (2, shape[1]))
        mod_pos = (
            np.ceil(tmax_pos * _MODULES / _TEMP_SENSORS),
            np.ceil(tmin_pos * _MODULES / _TEMP_SENSORS),
            _positions(rng, tick, usual_wet, _MODULES),
            _positions(rng, tick, usual_dry, _MODULES),
        )

    def temp(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 22.0, 35.0)

    vmax, vmin = np.clip(vmax, 3.55, 4.1), np.clip(vmin, 3.55, 4.1)
    return _Racks(
        soc=soc,
        soh=np.broadcast_to(tr.soh, shape),
        volt=volt,
        current=current,
        vmax=vmax,
        vmax_pos=vmax_pos,
        vmin=vmin,
        vmin_pos=vmin_pos,
        vavg=np.clip(cell, vmin, vmax),
        tmax=temp(tmax),
        tmax_pos=tmax_pos,
        tmin=temp(tmin),
        tmin_pos=tmin_pos,
        mod_tmax=temp(tmax - 0.6),
        mod_tmin=temp(tmin + 0.4),
        hmax=np.clip(hmax, 30.0, 60.0),
        hmin=np.clip(hmin, 30.0, 60.0),
        mod_pos=mod_pos,
    )


def _events(
    rng: np.random.Generator,
    n: int,
    interval_s: int,
    entities: int,
    per_day: float,
    duration_s: tuple[float, float],
) -> np.ndarray:
    """(T, entities) bool: rare episodes (warnings, faults) of random start and length."""
    counts = rng.poisson(per_day, entities)
    who = np.repeat(np.arange(entities), counts)
    start = rng.uniform(0, n * interval_s, who.size)
    length = rng.uniform(*duration_s, who.size)
    a = np.minimum((start // interval_s).astype(np.int64), n - 1)
    b = np.minimum(n, a + np.maximum(1, np.ceil(length / interval_s).astype(np.int64)))
    edges = np.zeros((n + 1, entities), dtype=np.int32)
    np.add.at(edges, (a, who), 1)
    np.add.at(edges, (b, who), -1)
    return np.cumsum(edges[:-1], axis=0) > 0


@dataclass
class _Events:
    rack_tray: np.ndarray
    rack_module: np.ndarray
    rack_offline: np.ndarray
    rack_comm: np.ndarray
    bank_temp: np.ndarray
    bank_under: np.ndarray
    bank_over: np.ndarray
    bank_volt: np.ndarray
    module_text: np.ndarray  # (R + 1,) object: "[]" then each rack's fault JSON


_MODULE_FAULTS = (
    ("M03", 'cell over-voltage, "latched"'),
    ("M07", "ΔT 3.2 °C, fan check"),
)


def _site_events(site: _Site, rng: np.random.Generator, n: int, interval_s: int) -> _Events:
    r, b = site.racks, site.banks
    ev = {
        "rack_tray": _events(rng, n, interval_s, r, 0.25, (60, 900)),
        "rack_module": _events(rng, n, interval_s, r, 0.15, (120, 1800)),
        "rack_offline": _events(rng, n, interval_s, r, 0.05, (30, 300)),
        "rack_comm": _events(rng, n, interval_s, r, 0.2, (10, 120)),
        "bank_temp": _events(rng, n, interval_s, b, 0.3, (300, 1800)),
        "bank_under": _events(rng, n, interval_s, b, 0.02, (300, 1800)),
        "bank_over": _events(rng, n, interval_s, b, 0.05, (300, 1800)),
        "bank_volt": _events(rng, n, interval_s, b, 0.3, (60, 900)),
    }
    module = rng.integers(1, 11, r)
    kind = rng.integers(0, len(_MODULE_FAULTS), r)
    texts = ["[]"]
    for m, k in zip(module.tolist(), kind.tolist(), strict=True):
        code, msg = _MODULE_FAULTS[k]
        texts.append(json.dumps([{"module": m, "code": code, "msg": msg}], ensure_ascii=False))
    return _Events(**ev, module_text=np.array(texts, dtype=object))


def _comm_fault_texts(racks_per_bank: int) -> np.ndarray:
    """JSON text for every bitmask of racks (in one bank) that lost communication."""
    out = []
    for mask in range(1 << racks_per_bank):
        faults = [
            {"rack": j + 1, "code": "E12", "msg": 'comm, "timeout"'}
            for j in range(racks_per_bank)
            if mask >> j & 1
        ]
        out.append(json.dumps(faults))
    return np.array(out, dtype=object)


def _wander(rng: np.random.Generator, s: np.ndarray) -> np.ndarray:
    """Slow zero-mean fluctuation in -1..1: a few sinusoids of 5-60 min periods."""
    periods = rng.uniform(300, 3600, 3)
    phases = rng.uniform(0, 2 * math.pi, 3)
    return np.sin(2 * math.pi * s[:, None] / periods + phases).sum(axis=1) / 3


# --------------------------------------------------------------------------- tables per day


def _by_bank(x: np.ndarray, site: _Site, how: str) -> np.ndarray:
    # Racks are ordered bank by bank, so (T, R) -> (T, B, racks per bank).
    grouped = x.reshape(x.shape[0], site.banks, site.racks_per_bank)
    return getattr(grouped, how)(axis=2)


def _table_day(
    site_id: str, table: str, seed: int, ordinal: int, n: int, interval_s: int
) -> tuple[dict[str, np.ndarray], int]:
    """One local day of ``table`` as flat columns (TIMESTAMP excluded) and rows per tick."""
    site = _SITES[site_id]
    p = _params(site_id, seed)
    tr = _truth(p, ordinal, n, interval_s)
    cols: dict[str, np.ndarray] = {}

    if table in ("rack", "bank"):
        m = _racks(p, tr, _rng(seed, site.no, _S_RACKS, ordinal), modules=site.no == 2)
        if site.no == 2:  # site 1 has no flag or fault columns
            ev = _site_events(site, _rng(seed, site.no, _S_EVENTS, ordinal), n, interval_s)
        if table == "rack":
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
            stopped = (tr.s >= _CHARGE[1]) & (tr.s < _CHARGE[1] + 600)
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
                "MASTER_RACK_COMMUNICATION_FAULT": _comm_fault_texts(site.racks_per_bank)[
                    comm_mask
                ],
                "BATTERY_STATUS_FOR_STANDBY": flag(idle),
                "BATTERY_STATUS_FOR_DISCHARGE": flag(tr.discharge > 0),
                "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS": flag(comm_mask > 0),
                "CHARGING_STOP_OF_STATUS": flag(stopped),
            }
        return {k: v.reshape(-1) for k, v in cols.items()}, site.banks

    rng = _rng(seed, site.no, _S_PCS if table == "pcs" else _S_ETC, ordinal)
    freq = 60.0 + 0.012 * _wander(rng, tr.s)
    if table == "pcs" and site.no == 1:
        b = site.banks
        current = _by_bank(tr.current, site, "sum")
        volt = _by_bank(tr.ocv + _R_INT * tr.current, site, "mean")
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

    if table == "pcs":
        vdc = (tr.ocv + _R_INT * tr.current).mean(axis=1) + rng.normal(0, 0.4, n)
        idc = tr.current.sum(axis=1) + rng.normal(0, 0.6, n)
        p_ac = tr.p_ac + rng.normal(0, 0.3, n)
        q_ac = 1.5 * _wander(rng, tr.s) + rng.normal(0, 0.3, n)
        s_ac = np.hypot(p_ac, q_ac)
        v_ll = 380.0 + 1.5 * _wander(rng, tr.s)[:, None] + np.array([0.0, 0.8, -0.5])
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
            "AI_C_KWH_ACH": np.round(tr.kwh_c / _ETA / 1000.0, 3),
            "AI_C_KWH_ACL": np.round(tr.kwh_c / _ETA, 1),
            "AI_D_KWH_ACH": np.round(tr.kwh_d * _ETA / 1000.0, 3),
            "AI_D_KWH_ACL": np.round(tr.kwh_d * _ETA, 1),
        }
        return cols, 1

    temp1 = tr.ambient + rng.normal(0, 0.1, n)
    hum1 = tr.humidity + rng.normal(0, 0.3, n)
    cols = {
        "SENSOR1_TEMPERATURE": np.round(np.clip(temp1, 22.0, 35.0), 1),
        "SENSOR1_HUMIDITY": np.round(np.clip(hum1, 30.0, 60.0), 1),
    }
    if site.no == 2:
        temp2 = tr.ambient + 0.8 + rng.normal(0, 0.1, n)
        hum2 = tr.humidity - 1.5 + rng.normal(0, 0.3, n)
        aux = _AUX_KW * (1.0 + 0.35 * np.sin(2 * math.pi * (tr.s / _DAY_S - 0.375)))
        cols |= {
            "SENSOR2_TEMPERATURE": np.round(np.clip(temp2, 22.0, 35.0), 1),
            "SENSOR2_HUMIDITY": np.round(np.clip(hum2, 30.0, 60.0), 1),
            "ACTIVE_POWER_TOTAL": np.round(tr.p_ac + aux + rng.normal(0, 0.2, n), 1),
            "ACTIVE_ENERGY_TOTAL_HIGH": np.round(tr.kwh_meter / 1000.0, 3),  # MWh
        }
    return cols, 1


# --------------------------------------------------------------------------- public API


def _schema(site: str, table: str) -> list[tuple[str, str]]:
    if site not in SCHEMAS:
        raise ConfigError(f"demo: unknown site {site!r}; use one of {sorted(SCHEMAS)}")
    if table not in SCHEMAS[site]:
        raise ConfigError(f"demo: unknown table {table!r}; use one of {sorted(SCHEMAS[site])}")
    return SCHEMAS[site][table]


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
    columns = _schema(site, table)
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

        rng = _rng(seed, _SITES[site].no, _TABLE_STREAM[table], ordinal)
        nulls = rng.random((rows, len(floats))) < _NULL_RATE
        # Each row appears once, a few twice in a row: np.repeat keeps the order.
        take = np.repeat(np.arange(rows), 1 + (rng.random(rows) < _DUP_RATE))
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_timestamps(micros: np.ndarray) -> list[str]:
    """UTC text, one format: 'YYYY-MM-DD HH:MM:SS', '.ffffff' only when fractional."""
    unique, inverse = np.unique(micros, return_inverse=True)  # ticks repeat per rack
    stamps = unique.astype("datetime64[us]")
    text = np.where(
        unique % 1_000_000 == 0,
        np.datetime_as_string(stamps, unit="s"),
        np.datetime_as_string(stamps, unit="us"),
    )
    return np.char.replace(text, "T", " ")[inverse].tolist()


def _write_table(
    conn: sqlite3.Connection, table: str, columns: list[tuple[str, str]], data: pa.Table
) -> None:
    ddl = ", ".join(f"{_quote(name)} {_SQLITE_TYPES[kind]}" for name, kind in columns)
    conn.execute(f"CREATE TABLE {_quote(table)} ({ddl})")
    values: list[list] = []
    for name, kind in columns:
        col = data.column(name)
        if kind == "timestamptz":
            values.append(_sqlite_timestamps(col.cast(pa.int64()).to_numpy()))
        elif kind == "float8":
            # NULL -> NaN here; SQLite stores a bound NaN as NULL, much faster than to_pylist.
            values.append(col.to_numpy().tolist())
        elif kind == "int4":
            values.append(col.to_numpy().tolist())
        else:
            values.append(col.to_pylist())
    names = ", ".join(_quote(name) for name, _ in columns)
    marks = ", ".join("?" for _ in columns)
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO {_quote(table)} ({names}) VALUES ({marks})", zip(*values, strict=True)
    )
    # Index after the insert: building it once is cheaper than maintaining it per row.
    index = _quote(f"{table}_TIMESTAMP_idx")
    conn.execute(f'CREATE INDEX {index} ON {_quote(table)} ("TIMESTAMP")')
    conn.execute("COMMIT")


def write_sqlite(
    out_dir: pathlib.Path,
    *,
    start: datetime.date = DEFAULT_START,
    days: int = 3,
    seed: int = 0,
    interval_s: int = 10,
    tz: str = "Asia/Seoul",
) -> list[pathlib.Path]:
    """Write ``ess1.sqlite`` and ``ess2.sqlite`` into ``out_dir``; return their paths.

    Each file is built under a temporary name and moved into place with os.replace, so a
    reader never sees a half-written database.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for site in SCHEMAS:
        final = out_dir / f"ess{site}.sqlite"
        tmp = out_dir / f".{final.name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                # A throw-away file: no journal, no fsync; os.replace provides atomicity.
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")
                for table, columns in SCHEMAS[site].items():
                    data = generate(
                        site, table, start, days, seed=seed, interval_s=interval_s, tz=tz
                    )
                    _write_table(conn, table, columns, data)
            finally:
                conn.close()
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        paths.append(final)
    return paths
