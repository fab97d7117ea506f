"""Shared pytest fixtures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from exporter.catalog import read_manifest
from exporter.config import Config, load
from exporter.demo import write_sqlite
from exporter.manifest import SiteManifest
from exporter.pipeline import run
from exporter.storage import LocalTarget
from tests.support.pgcluster import PgCluster
from tests.support.seed import insert_rows, load_demo

# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL 15 cluster shared by the whole test session."""
    with PgCluster.start() as cluster:
        yield cluster


# --- Seed-shaped site databases and one publish of them ---------------------------------

SEED_START = dt.date(2022, 9, 1)
SEED_DAYS = 2
SEED_INTERVAL_S = 300
NAN, INF = float("nan"), float("inf")
# Rows that stress the round trip; each also lands on a day boundary or is duplicated.
EDGE_RACK_COLUMNS = (
    "TIMESTAMP",
    "BANK_ID",
    "RACK_ID",
    "RACK_SOC",
    "RACK_SOH",
    "RACK_VOLTAGE",
    "RACK_CURRENT",
)
EDGE_RACK_ROWS = [
    ("2022-09-01 23:59:59.999999+09", 1, 1, NAN, INF, -INF, -12.5),
    ("2022-09-02 00:00:00+09", 1, 1, None, 0.1, -0.0, 1e-300),
    ("2022-09-02 00:00:00+09", 1, 1, None, 0.1, -0.0, 1e-300),  # exact duplicate
    ("2022-09-01 00:00:00+09", 1, None, 1.7976931348623157e308, -5e-324, 682.0, -40.0),
    ("2022-09-01 12:00:00.5+09", 1, 9, 50.0, 99.0, 682.25, 0.0),
]
EDGE_BANK_COLUMNS = ("TIMESTAMP", "BANK_ID", "BANK_SOC", "MASTER_RACK_COMMUNICATION_FAULT")
EDGE_TEXTS = [
    '한글 ✓ "quoted", comma, and\nnewline',
    "",
    None,
    '[{"rack": 3, "msg": "a,b \\"c\\""}]',
    " leading and trailing ",
    "crlf\r\ninside",
    "NULL",
]
EDGE_BANK_ROWS = [
    (f"2022-09-01 {10 + i:02d}:00:00.123+09", 1, -1.5 * i, text)
    for i, text in enumerate(EDGE_TEXTS)
] + [("2022-09-01 23:59:59.999999+09", 2, NAN, "")]

SITES_TOML = """
[dataset]
title = "Round-trip test"
[export]
target = "unused"
[sites.1]
timezone = "Asia/Seoul"
dsn = "${ESS1_DSN}"
[sites.1.tables.bank]
keys = ["BANK_ID"]
[sites.1.tables.rack]
keys = ["BANK_ID", "RACK_ID"]
[sites.1.tables.pcs]
keys = ["BANK_ID"]
[sites.1.tables.etc]
[sites.2]
timezone = "Asia/Seoul"
dsn = "${ESS2_DSN}"
[sites.2.tables.bank]
keys = ["BANK_ID"]
[sites.2.tables.rack]
keys = ["BANK_ID", "RACK_ID"]
[sites.2.tables.pcs]
[sites.2.tables.etc]
"""


@dataclass(frozen=True)
class SeedSites:
    dsns: dict[str, str]
    config_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {f"ESS{site}_DSN": dsn for site, dsn in self.dsns.items()}

    def config(self) -> Config:
        return load(self.config_path, env=self.env)


@pytest.fixture(scope="session")
def seed_sites(pg: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> SeedSites:
    """Both sites in PostgreSQL, demo values plus the edge rows above."""
    dsns = {}
    for site in ("1", "2"):
        dsns[site] = pg.create_database(f"ess{site}")
        with psycopg.connect(dsns[site], autocommit=True) as conn:
            load_demo(conn, site, start=SEED_START, days=SEED_DAYS, interval_s=SEED_INTERVAL_S)
            if site == "1":
                insert_rows(conn, "rack", EDGE_RACK_COLUMNS, EDGE_RACK_ROWS)
            else:
                insert_rows(conn, "bank", EDGE_BANK_COLUMNS, EDGE_BANK_ROWS)
    config_path = tmp_path_factory.mktemp("config") / "sites.toml"
    config_path.write_text(SITES_TOML)
    return SeedSites(dsns, config_path)


@pytest.fixture(scope="session")
def published(seed_sites: SeedSites, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export of both seed sites into a fresh directory."""
    out = tmp_path_factory.mktemp("public")
    run(seed_sites.config(), target=str(out))
    return out


# --- Demo sources (SQLite): hourly rows from 2022-08-30 -------------------------------------

DEMO_LATER = dt.datetime(2022, 9, 20, tzinfo=dt.UTC)  # every demo day complete, none recent


def demo_config(tmp_path: Path, days: int) -> Config:
    """The demo config over `days` days of demo sources written under tmp_path/src."""
    write_sqlite(tmp_path / "src", start=dt.date(2022, 8, 30), days=days, interval_s=3600)
    return load(Path("config/demo.toml"), env={"ESS_DEMO_DIR": str(tmp_path / "src")})


@pytest.fixture(scope="session")
def demo_published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo configuration (config/demo.toml, with its data dictionary) published over
    three days of demo sources at 10-minute rows: site 1 rack has 144 rows a rack a day."""
    src = tmp_path_factory.mktemp("demo-src")
    write_sqlite(src, start=dt.date(2022, 9, 1), days=3, interval_s=600)
    config = load(Path("config/demo.toml"), env={"ESS_DEMO_DIR": str(src)})
    out = tmp_path_factory.mktemp("demo") / "public"
    run(config, target=str(out), now=DEMO_LATER)
    return out


def published_manifest(root: Path, site: str) -> SiteManifest:
    """A site's manifest as a local publish under `root` holds it."""
    manifest = read_manifest(LocalTarget(root), site)
    assert manifest is not None, f"{root}: site {site} has no manifest"
    return manifest


# --- S3: moto's server on a loopback port ------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API endpoint (moto's server) for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 at the endpoint through the standard environment variables."""
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(s3_env: dict[str, str], request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket per test."""
    import re

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + "-b"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True, scope="session")
def _quiet_moto_access_log() -> None:
    """moto's server logs every request through werkzeug; keep failures readable."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
