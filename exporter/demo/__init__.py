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

The parts: ``schemas`` (the columns), ``model`` (the noise-free schedule), ``measure``
(sensor readings and events), ``tables`` (one function per table, ``generate``) and
``sqlite`` (the files). numpy and pyarrow load only when data is generated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .schemas import DEFAULT_START, KEYS, SCHEMAS, keys_for

if TYPE_CHECKING:
    from .sqlite import write_sqlite
    from .tables import generate

__all__ = ["DEFAULT_START", "KEYS", "SCHEMAS", "generate", "keys_for", "write_sqlite"]

_LAZY = {"generate": "tables", "write_sqlite": "sqlite"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
