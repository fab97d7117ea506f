"""The seed service's reconstruction (``seed_api``): where it is and what its schema says.

The reconstruction lives outside this repository (``../shared/seed_api`` beside the worktree,
or ``$ESS_SEED_API_DIR``); re-recording the golden replies runs it. Only its ``load.py`` and
``schema.sql`` are kept, in tests/golden/fixture/ (`SCHEMA_SQL`). ``schema_columns`` reads
a ``schema.sql``: one ``\\connect essN`` section per site, one ``CREATE TABLE`` per table.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_SQL = ROOT / "tests" / "golden" / "fixture" / "schema.sql"


def seed_api_dir() -> Path | None:
    """The reconstruction's folder, or None when it is not on this machine."""
    candidates = [os.environ.get("ESS_SEED_API_DIR"), ROOT.parent / "shared" / "seed_api"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "schema.sql").is_file():
            return Path(candidate)
    return None


_CONNECT = re.compile(r"^\\connect\s+ess(\d+)\s*$", re.M)
_TABLE = re.compile(r'CREATE TABLE "(\w+)" \((.*?)\);', re.S)
_COLUMN = re.compile(r'^\s*"([^"]+)"\s+(.+?)(?:\s+NOT NULL)?,?\s*$', re.M)


def schema_columns(schema_sql: str) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """{site: {table: [(column, PostgreSQL type)]}} in file order, e.g. ``("BANK_ID", "int4")``."""
    text = "\n".join(line for line in schema_sql.splitlines() if not line.startswith("--"))
    sites: dict[str, dict[str, list[tuple[str, str]]]] = {}
    parts = _CONNECT.split(text)  # [preamble, site, body, site, body, ...]
    for site, body in zip(parts[1::2], parts[2::2], strict=True):
        sites[site] = {table: _COLUMN.findall(columns) for table, columns in _TABLE.findall(body)}
    return sites
