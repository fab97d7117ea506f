"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pgcluster import PgCluster

# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL 15 cluster shared by the whole test session."""
    with PgCluster.start() as cluster:
        yield cluster
