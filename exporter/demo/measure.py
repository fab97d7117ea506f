"""The demo's measurements: what rack sensors read around the model, and rare events."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from .model import CELLS, MODULES, R_INT, TEMP_SENSORS, Params, Site, Truth


@dataclass
class Racks:
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
    rng: np.random.Generator, tick: np.ndarray, usual: np.ndarray, count: int = CELLS
) -> np.ndarray:
    """Position (1..count) per tick and rack: mostly the rack's usual one, changing a few times."""
    n_racks = usual.shape[0]
    bounds = np.sort(rng.uniform(0, tick[-1] + 1, (n_racks, 3)), axis=1)
    other = rng.integers(1, count + 1, (n_racks, 4))
    cand = np.where(rng.random((n_racks, 4)) < 0.75, usual[:, None], other)
    segment = (tick[:, None, None] >= bounds[None]).sum(axis=2)  # (T, R) in 0..3
    return cand[np.arange(n_racks)[None, :], segment].astype(np.float64)


def measure_racks(p: Params, tr: Truth, rng: np.random.Generator, modules: bool) -> Racks:
    shape = tr.soc.shape
    current = tr.current + p.i_bias + rng.normal(0, 0.15, shape)
    volt = tr.ocv + R_INT * tr.current + p.v_off + rng.normal(0, 0.3, shape)
    load = np.abs(tr.current) / 40.0
    edge = ((tr.soc - 50.0) / 50.0) ** 2  # cells spread more near empty and full
    cell = volt / CELLS
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
    tmax_pos = _positions(rng, tick, p.hot_sensor, TEMP_SENSORS)
    tmin_pos = _positions(rng, tick, p.cold_sensor, TEMP_SENSORS)
    mod_pos = None
    if modules:
        # A module holds 4 temperature sensors: the hottest/coldest module usually holds
        # the hottest/coldest sensor; humidity extremes wander on their own.
        usual_wet, usual_dry = rng.integers(1, MODULES + 1, (2, shape[1]))
        mod_pos = (
            np.ceil(tmax_pos * MODULES / TEMP_SENSORS),
            np.ceil(tmin_pos * MODULES / TEMP_SENSORS),
            _positions(rng, tick, usual_wet, MODULES),
            _positions(rng, tick, usual_dry, MODULES),
        )

    def temp(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 22.0, 35.0)

    vmax, vmin = np.clip(vmax, 3.55, 4.1), np.clip(vmin, 3.55, 4.1)
    return Racks(
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
class Events:
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


def site_events(site: Site, rng: np.random.Generator, n: int, interval_s: int) -> Events:
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
    return Events(**ev, module_text=np.array(texts, dtype=object))


def comm_fault_texts(racks_per_bank: int) -> np.ndarray:
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


def wander(rng: np.random.Generator, s: np.ndarray) -> np.ndarray:
    """Slow zero-mean fluctuation in -1..1: a few sinusoids of 5-60 min periods."""
    periods = rng.uniform(300, 3600, 3)
    phases = rng.uniform(0, 2 * math.pi, 3)
    return np.sin(2 * math.pi * s[:, None] / periods + phases).sum(axis=1) / 3
