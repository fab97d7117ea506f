"""The golden source (tests/golden/source.json) in PostgreSQL, and its publish with ess-export.

The reference's `load.py` (kept with its `schema.sql` in tests/golden/fixture/ by `make golden`,
so the replay needs nothing outside this repository) makes the fixture in about 100 s on this
machine, almost all of it Python generating 1.7 million rows. So the first load also writes
each table's `COPY ... TO STDOUT` text into a cache folder; later sessions create the schema
with `load.py --schema-only` and `COPY ... FROM` those files (a few seconds). Either way every
table's row count and md5 are checked against source.json before anything is published, so a
stale or damaged cache can only fail loudly, never change the data.

    python -m tests.support.golden_source DIR     # publish the golden source into DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.pgcluster import PgCluster

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
SOURCE = json.loads((GOLDEN / "source.json").read_text())
CONFIG = GOLDEN / "ess-export.toml"
DATABASES = ("ess1", "ess2")
# load.py's --db-suffix: ess1_golden, ess2_golden, beside the suite's own ess1 and ess2.
SUFFIX = "_golden"


def fixture_dir() -> Path:
    """The reference's `load.py` and `schema.sql`, as `make golden` recorded them (checked)."""
    found = GOLDEN / "fixture"
    for name, key in (("load.py", "load_py_sha256"), ("schema.sql", "schema_sql_sha256")):
        if hashlib.sha256((found / name).read_bytes()).hexdigest() != SOURCE[key]:
            raise RuntimeError(f"{found / name} is not the file source.json was recorded with")
    return found


def cache_dir() -> Path:
    base = os.environ.get("ESS_GOLDEN_CACHE") or Path.home() / ".cache" / "ess-export" / "golden"
    return Path(base) / SOURCE["load_py_sha256"][:16]


def _dsn_base(pg: PgCluster) -> str:
    return pg.dsn("postgres").rsplit("/", 1)[0]  # load.py wants a URI without a database


def _load_py(pg: PgCluster, seed: Path, suffix: str, *extra: str) -> None:
    argv = [sys.executable, str(seed / "load.py"), "--dsn-base", _dsn_base(pg)]
    res = subprocess.run(
        [*argv, *SOURCE["load_args"], "--db-suffix", suffix, *extra],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if res.returncode != 0:
        raise RuntimeError(f"load.py failed:\n{res.stdout}\n{res.stderr}")


def _copy_file(cache: Path, db: str, table: str) -> Path:
    return cache / f"{db}.{table}.copy"


def _cached(cache: Path) -> bool:
    return all(
        _copy_file(cache, db, table).is_file() for db in DATABASES for table in SOURCE["tables"][db]
    )


def _check(pg: PgCluster, suffix: str) -> None:
    """Every table's row count and COPY md5 equal source.json's (table order included)."""
    for db in DATABASES:
        with pg.connect(db + suffix) as conn:
            for table, want in SOURCE["tables"][db].items():
                md5, rows = hashlib.md5(), 0
                with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                    for chunk in copy:
                        md5.update(chunk)
                        rows += bytes(chunk).count(b"\n")
                got = (rows, md5.hexdigest())
                if got != (want["rows"], want["copy_md5"]):
                    raise RuntimeError(
                        f"{db}.{table}: {got} differs from source.json "
                        f"{(want['rows'], want['copy_md5'])}; delete {cache_dir()} and retry"
                    )


def load_source(pg: PgCluster, suffix: str = SUFFIX) -> None:
    """Databases ess1`suffix` and ess2`suffix` in `pg`, holding exactly source.json's rows."""
    seed = fixture_dir()
    cache = cache_dir()
    if _cached(cache):
        _load_py(pg, seed, suffix, "--schema-only")
        for db in DATABASES:
            with pg.connect(db + suffix) as conn:
                for table in SOURCE["tables"][db]:
                    with (
                        _copy_file(cache, db, table).open("rb") as src,
                        conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy,
                    ):
                        while chunk := src.read(1 << 20):
                            copy.write(chunk)
                conn.commit()
        _check(pg, suffix)
        return
    _load_py(pg, seed, suffix)
    _check(pg, suffix)
    cache.mkdir(parents=True, exist_ok=True)
    for db in DATABASES:
        with pg.connect(db + suffix) as conn:
            for table in SOURCE["tables"][db]:
                part = _copy_file(cache, db, table).with_suffix(".part")
                with part.open("wb") as out, conn.cursor().copy(f'COPY "{table}" TO STDOUT') as cp:
                    for chunk in cp:
                        out.write(chunk)
                part.replace(_copy_file(cache, db, table))


def publish(pg: PgCluster, root: Path, suffix: str = SUFFIX) -> None:
    """`ess-export run` of tests/golden/ess-export.toml into `root`."""
    env = {
        **os.environ,
        "GOLDEN_ESS1_DSN": pg.dsn("ess1" + suffix),
        "GOLDEN_ESS2_DSN": pg.dsn("ess2" + suffix),
        "ESS_EXPORT_TARGET": str(root),
    }
    argv = [sys.executable, "-m", "exporter", "run", "--config", str(CONFIG)]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"ess-export run failed:\n{res.stdout}\n{res.stderr}")


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve()
    with PgCluster.start() as pg:
        load_source(pg)
        publish(pg, root)
    print(f"published the golden source into {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
