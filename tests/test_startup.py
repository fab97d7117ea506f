"""Start-up: each command loads only the libraries it uses (module sets, never times).

Each case runs one command in a fresh interpreter and lists which heavy packages (and
which of our stages) it imported. `python -X importtime -m exporter ...` shows what they
cost; here only their presence is checked, so a stray top-level import fails a test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import load
from exporter.demo import write_sqlite
from exporter.pipeline import run

ROOT = Path(__file__).resolve().parents[1]
# Heavy packages, and the stages whose imports carry them.
WATCHED = {
    "polars", "pyarrow", "numpy", "duckdb", "connectorx", "psycopg", "jinja2", "boto3",
    "botocore", "msgspec", "exporter.pipeline", "exporter.sources", "exporter.write",
    "exporter.site", "exporter.query", "exporter.query.engine", "exporter.verification",
    "exporter.demo.tables",
}  # fmt: skip
PROBE = """
import json, os, sys
from exporter.cli import main
try:
    main(sys.argv[1:], prog_name="ess-export")
except SystemExit as exc:
    code = exc.code
watched = json.loads(os.environ["WATCHED"])
with open(os.environ["LOADED_TO"], "w") as out:
    json.dump({"code": code, "loaded": sorted(set(watched) & set(sys.modules))}, out)
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A small demo publish that is up to date with its sources: a run has nothing to do."""
    folder = tmp_path_factory.mktemp("startup")
    write_sqlite(folder / "src", start=dt.date(2022, 9, 1), days=1, interval_s=3600)
    env = {"ESS_DEMO_DIR": str(folder / "src"), "ESS_EXPORT_TARGET": str(folder / "public")}
    run(load(ROOT / "config" / "demo.toml", env=env), now=dt.datetime(2022, 9, 20, tzinfo=dt.UTC))
    return folder / "public", env


def loaded(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The watched modules that `ess-export ARGS` imported; it must exit 0 (or 4)."""
    record = tmp_path / "loaded.json"
    environ = {**os.environ, **(env or {}), "WATCHED": json.dumps(sorted(WATCHED))}
    environ["LOADED_TO"] = str(record)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(record.read_text())
    assert found["code"] in (None, 0), done.stderr
    return set(found["loaded"])


def test_help_loads_no_library(tmp_path: Path) -> None:
    assert loaded(tmp_path, "--help") == set()
    assert loaded(tmp_path, "demo", "--help") == set()


def test_a_run_with_nothing_to_export_loads_no_encoder_driver_or_query_engine(
    tmp_path: Path, published: tuple[Path, dict[str, str]]
) -> None:
    _, env = published
    config = str(ROOT / "config" / "demo.toml")
    found = loaded(tmp_path, "run", "--config", config, env=env)
    assert "exporter.pipeline" in found  # it did run
    # Encoding (polars), PostgreSQL (psycopg), bulk reads (connectorx), page templates
    # (jinja2), S3 (boto3) and DuckDB load only once there is something to do with them.
    assert found & {"polars", "psycopg", "connectorx", "jinja2", "boto3", "duckdb"} == set()
    assert found & {"exporter.write", "exporter.query", "exporter.demo.tables"} == set()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["query", "{root}", "--site", "1", "--table", "etc"], id="query"),
        pytest.param(["sql", "{root}", "SELECT count(*) FROM etc"], id="sql"),
    ],
)
def test_query_and_sql_load_no_export_stack(
    tmp_path: Path, published: tuple[Path, dict[str, str]], args: list[str]
) -> None:
    root, _ = published
    found = loaded(tmp_path, *(a.format(root=root) for a in args))
    assert {"duckdb", "exporter.query"} <= found  # it did query
    assert found & {"exporter.pipeline", "exporter.sources", "exporter.write"} == set()
    assert found & {"psycopg", "connectorx", "jinja2", "boto3", "exporter.site"} == set()
    assert "exporter.demo.tables" not in found


def test_verify_reads_manifests_only(
    tmp_path: Path, published: tuple[Path, dict[str, str]]
) -> None:
    root, _ = published
    found = loaded(tmp_path, "verify", "--target", str(root))
    assert found == {"exporter.verification", "msgspec"}


def test_site_renders_without_the_export_or_query_stack(
    tmp_path: Path, published: tuple[Path, dict[str, str]]
) -> None:
    root, _ = published
    found = loaded(tmp_path, "site", "--target", str(root))
    assert {"exporter.site", "jinja2"} <= found
    assert found & {"exporter.pipeline", "exporter.sources", "exporter.query"} == set()
    assert found & {"polars", "duckdb", "psycopg", "connectorx", "boto3"} == set()
