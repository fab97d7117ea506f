"""What the docs tell a user to type runs as written: the README's shell block (against a
real PostgreSQL and moto's S3 server) and the table pages' "from the web" snippets (against
`ess-export serve`'s HTTP server)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import html5lib
import pandas as pd
import polars as pl
import psycopg
import pytest

from exporter.serve import make_server
from tests.conftest import SEED_START
from tests.support.pgcluster import PgCluster
from tests.support.seed import load_demo

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and `[optional]` parts cut."""
    joined = block.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line)
        line = re.sub(r"\s*\[[^\]]*\]", "", line).strip()
        if line:
            found.append(re.sub(r"\s+", " ", line))
    return found


def test_every_shell_block_is_run_by_a_test_or_by_ci() -> None:
    firsts = [commands(block)[0] for block in shell_blocks(README)]
    # `make demo` and `make test` are what CI runs; `make help`/`lint`/`bench` are the
    # developer's block (the lint runs in CI too, the bench is run by hand). The rest runs
    # in test_the_running_it_block_runs_as_written.
    assert firsts == ["make demo", "ess-export demo", "make help"]


@pytest.fixture
def home(pg: PgCluster, tmp_path: Path, s3_env: dict[str, str]) -> Iterator[tuple[Path, dict]]:
    """A working directory with config/ and two seed-shaped PostgreSQL sites, the README's
    bucket on moto's server, and ess-export on PATH."""
    shutil.copytree(ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("__*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env.update(s3_env, PATH=f"{BIN}:{env.get('PATH', '/usr/bin')}")
    for site in ("1", "2"):
        dsn = pg.create_database(f"readme_{site}_{os.getpid()}_{time.monotonic_ns()}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            load_demo(conn, site, start=SEED_START, days=2, interval_s=1800)
        env[f"ESS{site}_DSN"] = dsn
    client = boto3.client("s3")
    if "open-data" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="open-data")
    yield tmp_path, env


def test_the_running_it_block_runs_as_written(home: tuple[Path, dict]) -> None:
    cwd, env = home
    block = next(b for b in shell_blocks(README) if b.startswith("ess-export demo"))
    ran = []
    for command in commands(block):
        if command.startswith("ess-export serve"):
            assert_serves(command, cwd, env)
        else:
            result = subprocess.run(
                command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
            )
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            assert "Traceback" not in result.stderr, command
        ran.append(command.split()[1])
    assert ran == [
        *("demo", "plan", "run", "run", "run", "verify", "site", "serve", "query", "sql"),
    ]
    assert (cwd / "run.json").exists() and (cwd / "public/catalog.json").exists()


def assert_serves(command: str, cwd: Path, env: dict[str, str]) -> None:
    server = subprocess.Popen(
        command.split(), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8000/catalog.json") as response:
                    assert response.status == 200
                    return
            except OSError:
                assert time.monotonic() < deadline, "ess-export serve did not answer in 30 s"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- the table page's snippets that read over HTTP ------------------------------------------


@pytest.fixture
def served(tree: Path) -> Iterator[str]:
    server = make_server(tree, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    from tests.conftest import demo_config

    config, out = demo_config(tmp_path, days=2), tmp_path / "public"
    from exporter.pipeline import run

    run(config, target=str(out))
    return out


def snippets(page: Path, base: str) -> dict[str, str]:
    """The page's snippets with BASE set to the server's address, as the page's script does."""
    root = html5lib.parse(page.read_bytes(), treebuilder="etree", namespaceHTMLElements=False)
    found = {e.get("data-snippet"): "".join(e.itertext()) for e in root.iter("pre")}
    return {
        name: re.sub(
            r"^BASE ?= ?(['\"])[^'\"]*\1",
            lambda m: f"BASE = {m[1]}{base}{m[1]}" if " = " in m[0] else f"BASE={m[1]}{base}{m[1]}",
            text,
            flags=re.M,
        )
        for name, text in found.items()
    }


def test_the_web_snippets_read_a_day_from_the_server(tree: Path, served: str) -> None:
    found = snippets(tree / "sites/1/rack/index.html", served)
    for name in ("polars-web", "pandas-web"):
        # Each web block follows its local one on the page, whose import it shares.
        scope: dict[str, Any] = {"pl": pl, "pd": pd}
        exec(found[name], scope)  # the page's own example, run as a reader would
        day = scope["day"]
        assert len(day) > 0, name
        if name == "pandas-web":  # timestamps parsed, with their offset, not left as text
            first = day["timestamp"].iloc[0]
            assert isinstance(first, pd.Timestamp) and first.utcoffset() == timedelta(hours=9)


def test_the_curl_snippet_downloads_every_file_of_the_table(
    tree: Path, served: str, tmp_path: Path
) -> None:
    script = snippets(tree / "sites/1/rack/index.html", served)["curl"]
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=fetched,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # One day's CSV into the working directory, then every day's Parquet under data/.
    parquet = sorted(p.relative_to(tree) for p in tree.glob("data/parquet/site=1/table=rack/*/*"))
    got = sorted(p.relative_to(fetched) for p in fetched.rglob("*") if p.is_file())
    assert len(parquet) == 2 and got[1:] == parquet
    assert got[0].suffix == ".csv" and len(got[0].parts) == 1
    for path in parquet:
        assert (fetched / path).read_bytes() == (tree / path).read_bytes()
    one = next(tree.glob(f"data/csv/site=1/table=rack/*/{got[0].name}"))
    assert (fetched / got[0]).read_bytes() == one.read_bytes()
