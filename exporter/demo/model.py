"""The demo's noise-free model: per-site constants, the daily schedule, SOC and counters."""

from __future__ import annotations

import datetime
import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Site:
    no: int
    banks: int
    racks_per_bank: int

    @property
    def racks(self) -> int:
        return self.banks * self.racks_per_bank


SITES = {"1": Site(1, 1, 8), "2": Site(2, 2, 4)}
TABLE_STREAM = {"bank": 10, "rack": 11, "pcs": 12, "etc": 13}
# Site-wide streams: shared by all tables so a bank row aggregates the very rack rows.
S_PARAMS, S_RACKS, S_EVENTS, S_PCS, S_ETC = 0, 1, 2, 3, 4

CELLS = 180  # cells in series per rack: 180 x 3.79 V ~ 682 V
MODULES = 10  # modules per rack (18 cells each); module positions run 1..10
TEMP_SENSORS = 40  # cell temperature sensors per rack (4 per module)
_CAP_AH = 280.0
_OCV0, _OCV_K = 652.0, 0.68  # rack open-circuit voltage = OCV0 + OCV_K * SOC[%]
R_INT = 0.09  # ohm: +-3.6 V at 40 A, so the voltage steps when current flows
CHARGE = (1 * 3600.0, 6 * 3600.0)  # local seconds since midnight
_DISCHARGE = (13 * 3600.0, 18 * 3600.0)
_RAMP_S = 300.0
ETA = 0.965  # one-way PCS efficiency between DC and AC
AUX_KW = 4.0  # HVAC and auxiliaries behind the site meter
_EPOCH = datetime.date(2021, 1, 1).toordinal()  # commissioning: SOH fade and counters start
_E0_KWH = 2_000_000.0  # counter value at the epoch; large so earlier dates stay positive
NULL_RATE = 0.001
DUP_RATE = 0.0005
DAY_S = 86400.0


@dataclass(frozen=True)
class Params:
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
def site_params(site: str, seed: int) -> Params:
    s = SITES[site]
    rng = day_rng(seed, s.no, S_PARAMS, 0)
    n = s.racks
    return Params(
        cap=_CAP_AH * (1 + 0.02 * rng.uniform(-1, 1, n)),
        phase=rng.uniform(0, 2 * math.pi, (4, n)),
        i_bias=rng.normal(0, 0.05, n),
        v_off=rng.normal(0, 0.6, n),
        t_off=rng.normal(0, 0.3, n),
        h_off=rng.normal(0, 1.0, n),
        fade=rng.uniform(0.55, 0.85, n),
        weak_cell=rng.integers(1, CELLS + 1, n),
        strong_cell=rng.integers(1, CELLS + 1, n),
        amb_phase=float(rng.uniform(0, 2 * math.pi)),
        # Drawn after the others so the earlier constants keep their values.
        hot_sensor=rng.integers(1, TEMP_SENSORS + 1, n),
        cold_sensor=rng.integers(1, TEMP_SENSORS + 1, n),
        bank_of=np.repeat(np.arange(1, s.banks + 1, dtype=np.int32), s.racks_per_bank),
        rack_no=np.tile(np.arange(1, s.racks_per_bank + 1, dtype=np.int32), s.banks),
    )


def day_rng(seed: int, site_no: int, stream: int, ordinal: int) -> np.random.Generator:
    # A SeedSequence over the tuple, not seed + offset: no two (seed, stream, day) collide,
    # and unlike hash() it is stable across processes.
    return np.random.default_rng([seed, site_no, stream, ordinal])


# The noise-free model.


def _soc_targets(p: Params, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SOC (%) at local midnight (low) and after the night charge (high), per day and rack.

    A smooth function of the date, not a random walk, so any day can be computed alone
    and SOC stays in 15.5..24.5 / 85.5..92.5 however long the demo runs.
    """
    o = np.asarray(ordinals, dtype=np.float64)[:, None]
    lo = 20 + 3.0 * np.sin(0.37 * o + p.phase[0]) + 1.5 * np.sin(1.13 * o + p.phase[1])
    hi = 89 + 2.5 * np.sin(0.61 * o + p.phase[2]) + 1.0 * np.sin(0.89 * o + p.phase[3])
    return lo, hi


def _dc_kwh(p: Params, soc0: np.ndarray, soc1: np.ndarray) -> np.ndarray:
    """|integral of OCV * I dt| in kWh moving each rack from soc0 to soc1, summed over racks.

    I dt = cap * 36 * dSOC (A s), so the integral of (OCV0 + K SOC) dSOC has a closed form.
    """
    e = p.cap * (_OCV0 * (soc1 - soc0) + _OCV_K * (soc1**2 - soc0**2) / 2) / 1e5
    return np.abs(e).sum(axis=-1)


def _day_kwh(p: Params, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DC energy charged and discharged on each day."""
    lo, hi = _soc_targets(p, ordinals)
    lo_next, _ = _soc_targets(p, np.asarray(ordinals) + 1)
    return _dc_kwh(p, lo, hi), _dc_kwh(p, hi, lo_next)


def _counter_base(p: Params, ordinal: int) -> tuple[float, float]:
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
class Truth:
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


def truth(p: Params, ordinal: int, n: int, interval_s: int) -> Truth:
    s = np.arange(n, dtype=np.float64) * interval_s
    charge, discharge = _trapezoid(s, CHARGE), _trapezoid(s, _DISCHARGE)
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
    p_ac = np.where(p_dc > 0, p_dc / ETA, p_dc * ETA)

    day = 2 * math.pi * (s / DAY_S - 0.375)  # sin peaks at 15:00 local
    drift = math.sin(0.21 * ordinal + p.amb_phase)
    ambient = 26.5 + 2.3 * np.sin(day) + 0.7 * drift
    humidity = 45.0 - 7.0 * np.sin(day) - 2.0 * drift
    heat = np.zeros_like(s)
    for a, b in (CHARGE, _DISCHARGE):  # cells warm up ~10 min after load starts
        heat += _sigmoid((s - a - 600.0) / 500.0) - _sigmoid((s - b - 900.0) / 700.0)

    base_c, base_d = _counter_base(p, ordinal)
    day_c, day_d = _day_kwh(p, np.array([ordinal]))
    kwh_c = _cumulative(base_c, float(day_c[0]), np.maximum(p_dc, 0.0))
    kwh_d = _cumulative(base_d, float(day_d[0]), np.maximum(-p_dc, 0.0))
    # The site meter imports charging energy plus auxiliaries outside the discharge window.
    aux = AUX_KW * (1.0 + 0.35 * np.sin(day))
    meter_day = float(day_c[0]) / ETA + AUX_KW * 19.0
    meter_base = _E0_KWH + (base_c - _E0_KWH) / ETA + AUX_KW * 19.0 * (ordinal - _EPOCH)
    kwh_meter = _cumulative(meter_base, meter_day, np.maximum(p_ac + aux, 0.0))

    years = (ordinal - _EPOCH) / 365.25
    soh = np.clip(99.5 - p.fade * years, 90.0, 100.0)
    return Truth(
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
