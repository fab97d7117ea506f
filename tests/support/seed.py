"""Load seed-shaped site databases into PostgreSQL: quoted upper-case columns, demo values.

Used by the tests and by bench/. Bulk loads go through COPY ... (FORMAT csv) from the
Arrow tables that `exporter.demo.generate` makes.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from exporter.demo import SCHEMAS, generate

PG_TYPES = {"timestamptz": "timestamptz", "int4": "int4", "float8": "float8", "text": "text"}
COPY_CHUNK_ROWS = 200_000


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_tables(conn: psycopg.Connection, site: str, tables: Iterable[str] | None = None) -> None:
    for table, columns in SCHEMAS[site].items():
        if tables is not None and table not in tables:
            continue
        ddl = ", ".join(f"{q(n)} {PG_TYPES[k]}" for n, k in columns)
        conn.execute(f"CREATE TABLE {q(table)} ({ddl})")
        conn.execute(f'CREATE INDEX ON {q(table)} ("TIMESTAMP")')


def copy_arrow(conn: psycopg.Connection, table: str, data: pa.Table) -> None:
    """COPY an Arrow table whose column names are the source names (NULL = empty field)."""
    names = ", ".join(q(n) for n in data.column_names)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with conn.cursor().copy(f"COPY {q(table)} ({names}) FROM STDIN (FORMAT csv)") as copy:
        for offset in range(0, data.num_rows, COPY_CHUNK_ROWS):
            sink = io.BytesIO()
            pacsv.write_csv(data.slice(offset, COPY_CHUNK_ROWS), sink, options)
            copy.write(sink.getvalue())


def load_demo(
    conn: psycopg.Connection,
    site: str,
    *,
    start: dt.date,
    days: int,
    interval_s: int,
    tables: Sequence[str] | None = None,
) -> None:
    """Create the site's tables and fill them with the demo's values."""
    create_tables(conn, site, tables)
    for table in SCHEMAS[site]:
        if tables is not None and table not in tables:
            continue
        copy_arrow(conn, table, generate(site, table, start, days, interval_s=interval_s))
    conn.execute("ANALYZE")


def insert_rows(
    conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]
) -> None:
    names = ", ".join(q(c) for c in columns)
    marks = ", ".join("%s" for _ in columns)
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {q(table)} ({names}) VALUES ({marks})", list(rows))
