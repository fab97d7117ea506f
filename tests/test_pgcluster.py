"""Smoke tests for the throwaway PostgreSQL cluster helper."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.pgcluster import PgCluster


def test_created_database_accepts_connections(pg: PgCluster) -> None:
    dsn = pg.create_database("smoke")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.dbname == "smoke"


def test_wrong_password_is_rejected(pg: PgCluster) -> None:
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.dsn("postgres", password="wrong"), connect_timeout=5)
    assert time.monotonic() - started < 5
