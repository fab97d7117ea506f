"""Write the demo's tables into one SQLite file per site, each moved into place whole."""

from __future__ import annotations

import datetime
import os
import pathlib
import sqlite3

import numpy as np
import pyarrow as pa

from .schemas import DEFAULT_START, SCHEMAS
from .tables import generate

_SQLITE_TYPES = {"timestamptz": "TIMESTAMP", "int4": "INTEGER", "float8": "REAL", "text": "TEXT"}


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
