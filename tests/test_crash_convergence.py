"""Trust the publish: re-exports killed or failing at any point never show a reader a bad
file, and the same plain command run again converges to a clean publish.

Sources are the demo's SQLite databases written twice with different seeds: "old" is
published first, "new" changes every day of every table, so a `--rebuild` replaces every
file under its stable name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Config, load
from exporter.demo import write_sqlite
from exporter.manifest import manifest_key
from exporter.pipeline import run
from exporter.query import Dataset
from exporter.storage import Target, open_target

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config/demo.toml"
SITES = ("1", "2")
FORMATS = ("parquet", "csv")
OLD, NEW = "old", "new"


def other(state: str) -> str:
    return NEW if state == OLD else OLD


@dataclass(frozen=True)
class Sources:
    """Two versions of the demo sources, and a clean publish of each (the references)."""

    dirs: dict[str, Path]
    references: dict[str, dict[str, Any]]

    def env(self, version: str) -> dict[str, str]:
        return {"ESS_DEMO_DIR": str(self.dirs[version])}

    def config(self, version: str) -> Config:
        return load(DEMO_CONFIG, env=self.env(version))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    root = tmp_path_factory.mktemp("sources")
    dirs = {OLD: root / "old", NEW: root / "new"}
    for seed, version in enumerate((OLD, NEW), start=1):
        write_sqlite(dirs[version], start=dt.date(2022, 9, 1), days=2, seed=seed, interval_s=600)
    found = Sources(dirs, {})
    for version in (OLD, NEW):
        reference = root / f"reference-{version}"
        run(found.config(version), target=str(reference))
        found.references[version] = published_state(open_target(str(reference)))
    assert all(
        found.references[OLD][site]["data"][key] != sha
        for site in SITES
        for key, sha in found.references[NEW][site]["data"].items()
    ), "every file of the new sources must differ from the old"
    return found


def site_state(target: Target, site: str) -> dict[str, Any]:
    """A site's data files (key -> sha256) and manifest (without its time) as published."""
    data = {}
    for fmt in FORMATS:
        for key in target.list(f"data/{fmt}/site={site}/"):
            data[key] = hashlib.sha256(target.get(key) or b"").hexdigest()
    raw = target.get(manifest_key(site))
    manifest = json.loads(raw) if raw is not None else None
    if manifest is not None:
        manifest.pop("generated_at")
    return {"data": data, "manifest": manifest}


def published_state(target: Target) -> dict[str, Any]:
    return {site: site_state(target, site) for site in SITES}


def which(state: dict[str, Any], references: dict[str, dict[str, Any]], site: str) -> str | None:
    """Which reference publish a site's state is, if either."""
    return next((v for v in (OLD, NEW) if references[v][site] == state), None)


SWAPPER = """
import os, sys, time
path, first, second, stop = sys.argv[1:5]
versions = [open(first, "rb").read(), open(second, "rb").read()]
deadline = time.monotonic() + 60
i = 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    with open(path + ".tmp", "wb") as f:
        f.write(versions[i % 2])
    os.replace(path + ".tmp", path)
    i += 1
    time.sleep(0.1)
"""


def test_queries_on_a_directory_survive_files_swapped_under_them(
    sources: Sources, tmp_path: Path
) -> None:
    """DuckDB opens a file more than once per query; a publish renaming a day's new file
    over it in between must not fail the read (both versions are good ones)."""
    old, new = tmp_path / "old", tmp_path / "new"
    run(sources.config(OLD), target=str(old), sites=["1"], tables=["etc"])
    run(sources.config(NEW), target=str(new), sites=["1"], tables=["etc"])
    key = "data/parquet/site=1/table=etc/date=2022-09-01/1_etc_2022-09-01.parquet"
    stop = tmp_path / "stop"
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(old / key), str(old / key), str(new / key), str(stop)]
    )
    answers = set()
    try:
        with Dataset.open(str(old)) as dataset:
            for _ in range(60):
                page = dataset.query("1", "etc", start="2022-09-01", end="2022-09-01T23:59:59")
                total = dataset.sql("SELECT count(*), sum(sensor1_temperature) FROM etc_1")
                answers.add((page.count, tuple(total.to_pylist()[0].values())))
    finally:
        stop.touch()
        swapper.wait(timeout=60)
    assert len(answers) >= 2, "the swaps should have been seen"
