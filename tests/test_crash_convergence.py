"""Trust the publish: re-exports killed or failing at any point never show a reader a bad
file, and the same plain command run again converges to a clean publish.

Sources are the demo's SQLite databases written twice with different seeds: "old" is
published first, "new" changes every day of every table, so a `--rebuild` replaces every
file under its stable name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from exporter.commit import COMMIT_SECONDS
from exporter.config import Config, load
from exporter.demo import write_sqlite
from exporter.errors import PublishError
from exporter.layout import journal_key, lock_key, manifest_key
from exporter.lock import Lease, site_lease
from exporter.pipeline import run
from exporter.query import Dataset
from exporter.storage import LocalTarget, Target, open_target
from exporter.verification import verify
from tests.support.pages import stale_pages
from tests.support.reader import Summary, check_site
from tests.support.targets import FailingTarget

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
    config_path: Path = DEMO_CONFIG
    references: dict[str, dict[str, Any]] = field(default_factory=dict)

    def env(self, version: str) -> dict[str, str]:
        return {"ESS_DEMO_DIR": str(self.dirs[version])}

    def config(self, version: str) -> Config:
        return load(self.config_path, env=self.env(version))

    def publish_references(self, root: Path) -> None:
        for version in (OLD, NEW):
            reference = root / f"reference-{self.config_path.stem}-{version}"
            run(self.config(version), target=str(reference))
            self.references[version] = published_state(open_target(str(reference)))
        assert all(
            self.references[OLD][site]["data"][key] != sha
            for site in SITES
            for key, sha in self.references[NEW][site]["data"].items()
        ), "every file of the new sources must differ from the old"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    root = tmp_path_factory.mktemp("sources")
    dirs = {OLD: root / "old", NEW: root / "new"}
    for seed, version in enumerate((OLD, NEW), start=1):
        write_sqlite(dirs[version], start=dt.date(2022, 9, 1), days=2, seed=seed, interval_s=600)
    found = Sources(dirs)
    found.publish_references(root)
    return found


# The demo's two sites with two of their four tables: half the files, for slower targets.
SMALL_DEMO = """
[dataset]
title = "ESS operating data (demo, two tables)"
[export]
target = "unused"
"""
SMALL_DEMO += "".join(
    f"""
[sites.{site}]
timezone = "Asia/Seoul"
dsn = "sqlite:${{ESS_DEMO_DIR}}/ess{site}.sqlite"
[sites.{site}.tables.etc]
[sites.{site}.tables.bank]
keys = ["BANK_ID"]
"""
    for site in SITES
)


@pytest.fixture(scope="module")
def small_sources(sources: Sources, tmp_path_factory: pytest.TempPathFactory) -> Sources:
    root = tmp_path_factory.mktemp("small-sources")
    (root / "small.toml").write_text(SMALL_DEMO)
    found = Sources(sources.dirs, root / "small.toml")
    found.publish_references(root)
    return found


@pytest.fixture
def fast_tmp(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory where the machine has one: a publish syncs every file it writes,
    which on a busy shared disk is most of these tests' time (and not what they test)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="ess-export-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def reader_rule_violations(target: Target) -> list[str]:
    """Files named by a site manifest whose sha256 is neither its entry's nor its journal's
    (checked at rest: nothing else is writing)."""
    summary = Summary()
    for site in SITES:
        check_site(target, site, summary)
    return summary.violations


def ess_export(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        env={**os.environ, **env},
    )


def start_export(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, **env},
    )


class Reader:
    """`tests.support.reader` in its own process, querying the target until stopped."""

    def __init__(self, uri: str, tmp: Path, env: dict[str, str]) -> None:
        self.result, self.stop = tmp / "reader.json", tmp / "reader.stop"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.reader", uri, str(self.result), str(self.stop)]
            + ["--cache", str(tmp / "reader-cache"), "--seconds", "600"],
            cwd=REPO,
            env={**os.environ, **env},
        )

    def finish(self) -> dict[str, Any]:
        self.stop.touch()
        assert self.process.wait(timeout=120) == 0, "the reader process failed"
        return json.loads(self.result.read_text())


@dataclass
class KillFigures:
    kills: int = 0
    mid_publish: int = 0
    """Kills that left a journal (a site's publish had begun and was not finished)."""
    before_publish: int = 0
    """Kills after which every site was still the previous publish."""
    after_publish: int = 0
    """Kills that came after the run had published everything (no journal left)."""
    probe_seconds: float = 0.0
    """How long the uninterrupted rebuild took."""
    probe_publishing: float = 0.0
    """Of that, the time from its journal's first appearance to its end."""
    outcomes: list[str] = field(default_factory=list)


def started_publishing(target: Target, process: subprocess.Popen[bytes]) -> float | None:
    """Seconds until the run's journal appears (it has begun to publish); None if the run
    ended first. Bounded by a minute."""
    began = time.monotonic()
    while process.poll() is None and time.monotonic() - began < 60:
        if target.head(journal_key(SITES[0])) is not None:
            return time.monotonic() - began
        time.sleep(0.005)
    return None


def kill_loop(
    uri: str, sources: Sources, tmp: Path, kills: int, seed: int, env: dict[str, str]
) -> KillFigures:
    """Publish the old sources, then kill `kills` rebuilds towards the other version while a
    reader queries; after each kill, a plain run converges.

    The kills are spread over an uninterrupted rebuild's duration: the even ones from the
    start of the process, the odd ones from the moment its journal appears over the rest
    of it. A start-up's length varies with the machine's load; anchoring half of the kills
    on the journal keeps them in the publish whatever it costs to start Python.
    """
    target = open_target(uri)
    refs = sources.references
    figures = KillFigures(kills=kills)
    config = ("--config", str(sources.config_path), "--target", uri)
    assert ess_export("run", *config, env={**env, **sources.env(OLD)}).returncode == 0
    reader = Reader(uri, tmp, env)
    try:
        # The probe: one uninterrupted rebuild (under the reader too) sets the time scale.
        began = time.monotonic()
        probe = start_export("run", *config, "--rebuild", env={**env, **sources.env(NEW)})
        journal = started_publishing(target, probe)
        assert probe.wait(timeout=180) == 0 and journal is not None
        figures.probe_seconds = time.monotonic() - began
        figures.probe_publishing = figures.probe_seconds - journal
        assert published_state(target) == refs[NEW]
        current = NEW
        rng = random.Random(seed)
        for k in range(kills):
            goal = other(current)
            # Stratified: each kill of a half lands in its own slice of the span.
            share = (k // 2 + rng.random()) / ((kills + 1) // 2)
            killed = start_export("run", *config, "--rebuild", env={**env, **sources.env(goal)})
            if k % 2:
                moment = share * figures.probe_publishing
                anchor = started_publishing(target, killed)
                where = f"kill {k} at journal + {moment:.2f}s towards {goal}"
            else:
                moment, anchor = share * figures.probe_seconds, 0.0
                where = f"kill {k} at {moment:.2f}s towards {goal}"
            if anchor is not None:
                time.sleep(moment)
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=60)
            assert reader_rule_violations(target) == [], where

            expected = {}
            journals = {site: target.get(journal_key(site)) is not None for site in SITES}
            for site in SITES:
                if journals[site]:
                    expected[site] = goal  # its publish had begun: the next run finishes it
                else:
                    found = which(site_state(target, site), refs, site)
                    assert found is not None, f"{where}: site {site} is neither publish"
                    expected[site] = found
            if any(journals.values()):
                figures.mid_publish += 1
            elif all(expected[s] == current for s in SITES):
                figures.before_publish += 1
            else:
                figures.after_publish += 1
            figures.outcomes.append(f"{where}: {expected}")

            plain = ess_export("run", *config, env={**env, **sources.env(goal)})
            assert plain.returncode == 0, f"{where}: {plain.stderr}"
            report = verify(target)
            assert report.clean, f"{where}: {report.problems}"
            for site in SITES:
                assert site_state(target, site) == refs[expected[site]][site], f"{where}, {site}"
            assert stale_pages(target) == [], where
            current = expected["1"]
    finally:
        summary = reader.finish()
    assert summary["errors"] == [], summary["errors"][:5]
    assert summary["violations"] == [], summary["violations"][:5]
    assert summary["rounds"] >= kills and summary["files"] > 0, summary

    # At the end a full rebuild gives the clean publish exactly.
    goal = other(current)
    done = ess_export("run", *config, "--rebuild", env={**env, **sources.env(goal)})
    assert done.returncode == 0, done.stderr
    assert published_state(target) == refs[goal]
    assert verify(target).clean and stale_pages(target) == []
    print(f"\n{uri}: {figures} reader: { ({k: v for k, v in summary.items() if k != 'errors'}) }")
    return figures


def test_sigkill_during_a_rebuild_then_a_plain_run_converges(
    sources: Sources, fast_tmp: Path
) -> None:
    figures = kill_loop(str(fast_tmp / "pub"), sources, fast_tmp, kills=20, seed=12, env={})
    # Kill timing depends on the machine's load: require that some kills landed mid-publish.
    assert figures.mid_publish >= 1, figures.outcomes


def test_sigkill_during_a_rebuild_on_s3_then_a_plain_run_converges(
    small_sources: Sources, tmp_path: Path, bucket: str, s3_env: dict[str, str]
) -> None:
    # Fewer kills and tables: a run on moto's server takes a few times as long.
    uri = f"s3://{bucket}/pub"
    figures = kill_loop(uri, small_sources, tmp_path, kills=6, seed=13, env=s3_env)
    assert figures.mid_publish + figures.after_publish >= 3, figures.outcomes


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


# -- a failure at every target call of a re-export ---------------------------------------------

# Local noon on 2022-09-03: both demo days are complete and inside the 3-day lookback window,
# so a plain run re-exports them (and finds every file changed with the new sources).
IN_LOOKBACK = dt.datetime(2022, 9, 3, 3, tzinfo=dt.UTC)
# Both days long past: a plain run re-exports nothing unless a journal says so.
LATER = dt.datetime(2022, 9, 20, tzinfo=dt.UTC)


def small(config: Config) -> Config:
    """Site 1's etc and bank tables only: every call of a re-export is a few dozen."""
    site = config.site("1")
    tables = tuple(t for t in site.tables if t.name in ("etc", "bank"))
    return replace(config, sites=(replace(site, tables=tables),))


def local_site_state(root: Path) -> dict[str, Any]:
    return site_state(LocalTarget(root), "1")


@pytest.mark.parametrize(
    ("options", "now", "commit_seconds"),
    [
        pytest.param({}, IN_LOOKBACK, COMMIT_SECONDS, id="lookback"),
        pytest.param({"rebuild": True}, LATER, 0.0, id="rebuild-committing-every-day"),
    ],
)
def test_a_failure_at_every_target_call_of_a_re_export_then_a_plain_run_converges(
    sources: Sources,
    fast_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, bool],
    now: dt.datetime,
    commit_seconds: float,
) -> None:
    monkeypatch.setattr("exporter.commit.COMMIT_SECONDS", commit_seconds)
    old, new = small(sources.config(OLD)), small(sources.config(NEW))
    before = fast_tmp / "before"
    run(old, target=str(before), now=now)
    states = {OLD: local_site_state(before)}

    def re_export(root: Path, fail_at: int | None) -> FailingTarget:
        shutil.copytree(before, root)
        # Every call from the `fail_at`-th on fails (a disk gone bad, a mount lost).
        failing = FailingTarget(root, fail_at)
        if fail_at is None:
            run(new, target=failing, now=now, **options)
        else:
            with pytest.raises(PublishError, match=f"injected failure at call {fail_at}:"):
                run(new, target=failing, now=now, **options)
        return failing

    calls = re_export(fast_tmp / "reference", None).calls
    states[NEW] = local_site_state(fast_tmp / "reference")
    assert states[NEW] != states[OLD] and len(calls) > 20, calls
    for k in range(1, len(calls) + 1):
        root = fast_tmp / f"k{k}"
        re_export(root, k)
        where = f"failure at call {k}: {calls[k - 1]}"
        assert reader_rule_violations(LocalTarget(root)) == [], where
        if options and not (root / journal_key("1")).exists():
            # The rebuild had not begun to publish: a plain run keeps the old publish.
            expected = which(local_site_state(root), {v: {"1": s} for v, s in states.items()}, "1")
            assert expected is not None, f"{where}: neither publish, and no journal"
        else:
            expected = NEW  # a plain run re-exports the lookback days, or finishes the rebuild
        run(new, target=str(root), now=now)  # plain, on a fresh target object
        assert local_site_state(root) == states[expected], where
        report = verify(LocalTarget(root))
        assert report.clean, f"{where}: {report.problems}"
        assert stale_pages(LocalTarget(root)) == [], where
        shutil.rmtree(root)


# -- an unwritable manifest path, a full disk ------------------------------------------------


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exit 1 and said why in one line (progress lines aside)."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def assert_converged(root: Path, sources: Sources, version: str) -> None:
    target = LocalTarget(root)
    report = verify(target)
    assert report.clean, report.problems
    assert published_state(target) == sources.references[version]
    assert stale_pages(target) == []


@pytest.mark.parametrize("immutable", ["sites/1", "sites/1/manifest.json"], ids=["folder", "file"])
def test_an_unwritable_manifest_path_fails_in_one_line_then_the_same_command_converges(
    sources: Sources, tmp_path: Path, immutable: str
) -> None:
    """Root ignores permission bits: `chattr +i` makes the path immutable even for root (the
    folder: nothing can be created in it; the file: it cannot be replaced)."""
    root = tmp_path / "pub"
    run(sources.config(OLD), target=str(root))
    command = ("run", "--target", str(root), "--rebuild")
    if subprocess.run(["chattr", "+i", str(root / immutable)], check=False).returncode:
        pytest.skip("this file system has no immutable attribute (chattr +i)")
    try:
        failed = ess_export(*command, env=sources.env(NEW))
        line = one_error_line(failed)
        assert f"{root}/sites/1/" in line and "Operation not permitted" in line, line
        assert reader_rule_violations(LocalTarget(root)) == []
    finally:
        subprocess.run(["chattr", "-i", str(root / immutable)], check=True)
    again = ess_export(*command, env=sources.env(NEW))
    assert again.returncode == 0, again.stderr
    assert_converged(root, sources, NEW)


@contextlib.contextmanager
def small_disk(mountpoint: Path) -> Iterator[Path]:
    """A tmpfs mounted for the test (as root), unmounted whatever happens."""
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def resize(mountpoint: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mountpoint)], check=True)


def used_bytes(mountpoint: Path) -> int:
    found = os.statvfs(mountpoint)
    return (found.f_blocks - found.f_bfree) * found.f_frsize


@pytest.mark.parametrize("free_kb", [8, 96, 160], ids=["full-at-once", "full-early", "full-later"])
def test_a_full_disk_fails_in_one_line_then_the_same_command_converges(
    sources: Sources, tmp_path: Path, free_kb: int
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        root = disk / "pub"
        run(sources.config(OLD), target=str(root))
        resize(disk, used_bytes(disk) + free_kb * 1024)
        command = ("run", "--target", str(root), "--rebuild")
        failed = ess_export(*command, env=sources.env(NEW))
        line = one_error_line(failed)
        assert "No space left on device" in line, line
        print(f"\n{free_kb} KB free: {len(failed.stderr.splitlines()) - 2} day(s) done; {line}")
        assert reader_rule_violations(LocalTarget(root)) == []
        resize(disk, 16 * 1024 * 1024)
        again = ess_export(*command, env=sources.env(NEW))
        assert again.returncode == 0, again.stderr
        assert_converged(root, sources, NEW)


# -- damaged documents -------------------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_site_manifest_affects_only_its_site_and_rebuild_repairs_it(
    sources: Sources, tmp_path: Path
) -> None:
    root = tmp_path / "pub"
    run(sources.config(OLD), target=str(root), until=dt.date(2022, 9, 1))
    truncate(root / manifest_key("1"))
    env = sources.env(OLD)

    # The next day is published for site 2; site 1 is named in one line with its fix.
    line = one_error_line(ess_export("run", "--target", str(root), env=env))
    assert f"{root}/sites/1/manifest.json is not a valid manifest" in line, line
    assert "`ess-export run --site 1 --rebuild`" in line, line
    assert site_state(LocalTarget(root), "2") == sources.references[OLD]["2"]

    # Readers of site 2 are not affected.
    found = ess_export(
        "query", str(root), "--site", "2", "--table", "rack", "--format", "json", env=env
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["count"] == 2305
    total = ess_export(
        "sql", str(root), "SELECT count(*) AS n FROM rack_2", "--format", "csv", env=env
    )
    assert (total.returncode, total.stdout) == (0, "n\n2305\n"), total.stderr
    (root / "sites/2/rack/index.html").unlink()
    rendered = one_error_line(ess_export("site", "--target", str(root), env=env))
    assert rendered.startswith("Error: wrote 1 page(s) of the other sites; "), rendered
    assert "sites/1/manifest.json is not a valid manifest" in rendered, rendered
    assert (root / "sites/2/rack/index.html").is_file()

    checked = ess_export("verify", "--target", str(root), env=env)
    assert checked.returncode == 1
    assert (
        "unreadable: sites/1/manifest.json (not a valid manifest: run "
        "`ess-export run --site 1 --rebuild`)"
    ) in checked.stdout.splitlines()
    # Its files are not called extra: which of them stay is the rebuild's to decide.
    assert [line for line in checked.stdout.splitlines() if line.startswith("extra")] == []

    rebuilt = ess_export("run", "--target", str(root), "--site", "1", "--rebuild", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert ess_export("verify", "--target", str(root), env=env).returncode == 0
    assert_converged(root, sources, OLD)


def test_a_truncated_catalog_is_named_by_verify_and_a_plain_run_rewrites_it(
    sources: Sources, tmp_path: Path
) -> None:
    root = tmp_path / "pub"
    run(sources.config(OLD), target=str(root))
    truncate(root / "catalog.json")
    checked = ess_export("verify", "--target", str(root), env={})
    assert (checked.returncode, checked.stdout.splitlines()) == (
        1,
        [
            "unreadable: catalog.json (not a valid catalog: run `ess-export run` to write it "
            "again)",
            "checked 32 file(s): 1 problem(s)",
        ],
    )
    again = ess_export("run", "--target", str(root), env=sources.env(OLD))
    assert again.returncode == 0, again.stderr
    assert ess_export("verify", "--target", str(root), env={}).returncode == 0
    assert_converged(root, sources, OLD)


# -- the lease -------------------------------------------------------------------------------


def lock_document(host: str, pid: int, expires: dt.datetime) -> bytes:
    return json.dumps(
        {
            "owner": f"{host}:{pid}:deadbeef",
            "host": host,
            "pid": pid,
            "token": "deadbeef" * 4,
            "started": expires.isoformat(),
            "renewed": expires.isoformat(),
            "expires": expires.isoformat(),
        }
    ).encode()


def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=60)
    return ended.pid


def test_a_lease_whose_owner_process_is_gone_is_taken_over_at_once(
    sources: Sources, tmp_path: Path
) -> None:
    root = tmp_path / "pub"
    run(sources.config(OLD), target=str(root))
    hours_away = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    (root / "locks").mkdir()
    (root / lock_key("1")).write_bytes(lock_document(socket.gethostname(), dead_pid(), hours_away))
    done = ess_export("run", "--target", str(root), "--rebuild", env=sources.env(NEW))
    assert done.returncode == 0, done.stderr
    assert not (root / lock_key("1")).exists()
    assert_converged(root, sources, NEW)


HOLDER = """
import sys, time
from datetime import timedelta
from pathlib import Path
from exporter.lock import site_lease
from exporter.storage import LocalTarget
root, stop = sys.argv[1:3]
with site_lease(LocalTarget(root), "1", timedelta(minutes=5)):
    print("held", flush=True)
    deadline = time.monotonic() + 120
    while not Path(stop).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_a_live_lease_stops_the_run_with_exit_3_and_changes_nothing(
    sources: Sources, tmp_path: Path
) -> None:
    root, stop = tmp_path / "pub", tmp_path / "stop"
    run(sources.config(OLD), target=str(root))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(stop)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        lease = (root / lock_key("1")).read_bytes()
        blocked = ess_export("run", "--target", str(root), "--rebuild", env=sources.env(NEW))
        assert blocked.returncode == 3, blocked.stderr
        errors = [line for line in blocked.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in blocked.stderr, blocked.stderr
        assert errors[0].startswith(
            f"Error: site 1 is being published by another run ({socket.gethostname()}:{holder.pid}:"
        ), errors[0]
        assert (root / lock_key("1")).read_bytes() == lease
        assert published_state(LocalTarget(root)) == sources.references[OLD]
        assert verify(LocalTarget(root)).clean
    finally:
        stop.touch()
        assert holder.wait(timeout=60) == 0
    assert not (root / lock_key("1")).exists()


def test_renew_moves_the_expiry_and_the_heartbeat_renews_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = LocalTarget(tmp_path)

    def expires() -> dt.datetime:
        return dt.datetime.fromisoformat(json.loads(target.get(lock_key("1")) or b"")["expires"])

    lease = Lease(target, "1", dt.timedelta(minutes=5))
    lease.acquire()
    first = expires()
    time.sleep(0.01)  # so that the next expiry is a later instant
    lease.renew()
    assert expires() > first and lease.lost is None
    lease.release()
    assert target.get(lock_key("1")) is None

    # Beats every 0.05 s: a lease of one second stays held for as long as the run lives.
    monkeypatch.setattr("exporter.lock.MIN_RENEW_SECONDS", 0.05)
    with site_lease(target, "1", dt.timedelta(seconds=0.25)) as held:
        first = expires()
        deadline = time.monotonic() + 30
        while expires() == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert expires() > first, "the heartbeat did not renew the lease"
        held.check()  # still ours


def test_a_run_whose_lease_was_taken_over_stops_before_its_next_commit(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, reference = tmp_path / "pub", tmp_path / "reference"
    old, new = small(sources.config(OLD)), small(sources.config(NEW))
    run(new, target=str(reference))
    run(old, target=str(root))
    monkeypatch.setattr("exporter.commit.COMMIT_SECONDS", 0.0)  # a commit after every day
    monkeypatch.setattr("exporter.lock.MAX_RENEW_SECONDS", 0.05)  # a heartbeat every 0.05 s
    lost = threading.Event()
    renew = Lease.renew

    def observed_renew(self: Lease) -> None:
        renew(self)
        if self.lost:
            lost.set()

    monkeypatch.setattr(Lease, "renew", observed_renew)

    def take_over(job: Any, encoded: Any) -> None:
        if lost.is_set():
            return
        # Another run takes the lease over (its owner: a process since gone, so that the
        # next run may take it in turn); our heartbeat then finds the lease is not ours.
        far = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
        (root / lock_key("1")).write_bytes(lock_document(socket.gethostname(), dead_pid(), far))
        assert lost.wait(timeout=30), "the heartbeat did not notice the takeover"

    with pytest.raises(PublishError) as failed:
        run(new, target=str(root), rebuild=True, progress=take_over)
    assert str(failed.value) == (
        f"site 1: lost the lease {root}/locks/1.json (another run took it over); stopped "
        "before committing. Run again"
    )
    assert reader_rule_violations(LocalTarget(root)) == []
    assert (root / journal_key("1")).exists(), "the day it had sent stays in its journal"
    run(new, target=str(root))  # the same plain command, once the other run is gone
    report = verify(LocalTarget(root))
    assert report.clean, report.problems
    assert local_site_state(root) == local_site_state(reference)


def test_a_file_that_cannot_be_finished_fails_the_run_in_one_line(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills just as a day's file is closed (its last bytes are synced). Made
    certain by failing the sync: a tmpfs fills at that exact moment only by chance."""

    sync = os.fsync

    def full(fd: int) -> None:
        if "/.staging/" in os.readlink(f"/proc/self/fd/{fd}"):  # a day's file, not a document
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        sync(fd)

    monkeypatch.setattr(os, "fsync", full)
    failed: list[BaseException] = []

    def first_publish() -> None:
        try:
            run(small(sources.config(OLD)), target=str(tmp_path / "pub"))
        except BaseException as exc:
            failed.append(exc)

    publishing = threading.Thread(target=first_publish, daemon=True)
    publishing.start()
    publishing.join(timeout=60)
    assert not publishing.is_alive(), "the run hangs when a file cannot be finished"
    assert [str(e) for e in failed] == [
        f"cannot write the files of site 1 table bank 2022-09-01 in {tmp_path}/pub/.staging: "
        "No space left on device; free space there (or make it writable) and run again"
    ]
