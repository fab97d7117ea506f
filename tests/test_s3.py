"""Publishing to S3 (moto's server): incremental, atomic, verifiable, safe under concurrency."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import connectorx
import psycopg
import pytest
from botocore.awsrequest import AWSResponse

from exporter.config import Config, load
from exporter.errors import LockHeld, PublishError, SourceError
from exporter.lock import site_lease
from exporter.pipeline import RunReport, run
from exporter.site.assets import assets
from exporter.storage import Target, make_s3_client, open_target
from exporter.verification import verify
from tests.support.pages import stale_pages
from tests.support.pgcluster import PgCluster
from tests.support.seed import load_demo

START = date(2022, 9, 1)
DAYS = 4
AFTER = datetime(2022, 9, 20, tzinfo=UTC)  # every day complete, none in the lookback
# Local 2022-09-05 12:00: with lookback_days = 2, 09-04 and 09-05 (no data yet) are recent.
DURING = datetime(2022, 9, 5, 3, tzinfo=UTC)

CONFIG = """
[dataset]
title = "S3 test"
[export]
lookback_days = 2
lock_minutes = {lock_minutes}
[export.s3]
max_attempts = {attempts}
[sites.{site}]
timezone = "Asia/Seoul"
dsn = "${{SITE_DSN}}"
[sites.{site}.tables.etc]
[sites.{site}.tables.bank]
keys = ["BANK_ID"]
"""


class Site:
    """A small mutable site database (etc and bank, 4 days at 10 minutes) and its config."""

    def __init__(self, pg: PgCluster, name: str, tmp: Path) -> None:
        self.dsn = pg.create_database(name)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            load_demo(conn, "1", start=START, days=DAYS, interval_s=600, tables=["etc", "bank"])
        self.tmp = tmp

    def config(self, site: str = "1", lock_minutes: int = 180, attempts: int = 5) -> Config:
        path = self.tmp / f"config-{site}-{lock_minutes}-{attempts}.toml"
        path.write_text(CONFIG.format(site=site, lock_minutes=lock_minutes, attempts=attempts))
        return load(path, env={"SITE_DSN": self.dsn})

    def sql(self, statement: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(statement)


@pytest.fixture
def site(pg: PgCluster, tmp_path: Path, request: pytest.FixtureRequest) -> Site:
    name = "s" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    return Site(pg, name, tmp_path)


def keys(bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    client = boto3.client("s3")
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item
    return found


def get(bucket: str, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def manifests_via_catalog(bucket: str, prefix: str = "pub/") -> dict[str, dict]:
    catalog = json.loads(get(bucket, prefix + "catalog.json"))
    return {e["site"]: json.loads(get(bucket, prefix + e["path"])) for e in catalog["sites"]}


def named_files(bucket: str, prefix: str = "pub/") -> dict[str, dict]:
    named = {}
    for site, manifest in manifests_via_catalog(bucket, prefix).items():
        for name, table in manifest["tables"].items():
            for partition in table["partitions"]:
                for fmt, entry in partition["files"].items():
                    where = {"site": site, "table": name, "format": fmt}
                    named[prefix + entry["path"]] = {**entry, **where, "date": partition["date"]}
    return named


class Requests:
    """Counts (and optionally fails) the requests of the S3 targets it opens."""

    def __init__(self, respond: Callable[[int, Any], AWSResponse | None] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.respond = respond

    def target(self, uri: str, config: Config) -> Target:
        """The target `run` would open for `uri`, its client's requests seen here."""
        client = make_s3_client(config.s3)
        client.meta.events.register("before-send.s3.*", self._before_send)
        return open_target(uri, config.s3, client)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        self.sent.append((request.method, request.url))
        return self.respond(len(self.sent), request) if self.respond else None

    def data_puts(self) -> list[str]:
        return [url for method, url in self.sent if method == "PUT" and "/data/" in url]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any):
        yield self.body


def error_response(request: Any, status: int, code: str) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))


# -- first publish, no-op, incremental -------------------------------------------------------


def test_first_publish_lists_exactly_what_the_manifests_name(site: Site, bucket: str) -> None:
    report = run(site.config(), target=f"s3://{bucket}/pub", now=AFTER)
    assert report.partitions == 2 * DAYS and report.bytes > 0
    listing = keys(bucket)
    named = named_files(bucket)
    documents = {"pub/catalog.json", "pub/datapackage.json", "pub/sites/1/manifest.json"}
    pages = {
        "pub/index.html",
        "pub/sites/1/index.html",
        "pub/sites/1/etc/index.html",
        "pub/sites/1/bank/index.html",
        "pub/sites/1/etc/2022-09/index.html",
        "pub/sites/1/bank/2022-09/index.html",
    }
    scripts = {f"pub/{key}" for key in assets()}  # the explorer and its Parquet reader
    lists = {
        f"pub/sites/1/{t}/2022-09/urls-{f}.txt" for t in ("etc", "bank") for f in ("csv", "parquet")
    }
    assert set(listing) == set(named) | documents | pages | scripts | lists  # no lock, no extra
    client = boto3.client("s3")
    for key, entry in named.items():
        data = get(bucket, key)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
        head = client.head_object(Bucket=bucket, Key=key)
        expected = (
            "text/csv; charset=utf-8"
            if key.endswith(".csv")
            else ("application/vnd.apache.parquet")
        )
        assert head["ContentType"] == expected
        assert head["CacheControl"] == "public, max-age=86400"
    for key in documents:
        assert client.head_object(Bucket=bucket, Key=key)["ContentType"] == "application/json"
    for key in pages:
        head = client.head_object(Bucket=bucket, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (
            "text/html; charset=utf-8",
            "no-cache",
        )
    for key in lists:  # each month's URL lists, published with its pages
        head = client.head_object(Bucket=bucket, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (
            "text/plain; charset=utf-8",
            "no-cache",
        )


def test_no_op_run_uploads_no_data(site: Site, bucket: str) -> None:
    config = site.config()
    run(config, target=f"s3://{bucket}/pub", now=DURING)
    before = {k: v["ETag"] for k, v in keys(bucket).items()}
    requests = Requests()
    report = run(config, target=requests.target(f"s3://{bucket}/pub", config), now=DURING)
    # The lookback days were extracted again, found identical, and not sent.
    assert report.partitions == 2 and report.unchanged == 2
    assert requests.data_puts() == [] and report.bytes == 0
    assert {k: v["ETag"] for k, v in keys(bucket).items()} == before
    # Nothing in the lookback window either: a handful of requests, whatever the file count.
    quiet = Requests()
    run(config, target=quiet.target(f"s3://{bucket}/pub", config), now=AFTER)
    # The journal (none: no interrupted run to heal), the manifest for the plan, the
    # catalog, then a HEAD to check that the manifest it lists is still the one read (not
    # read again): no lock, no PUT.
    assert [m for m, _ in quiet.sent] == ["GET", "GET", "GET", "HEAD"]
    assert "journal.json" in quiet.sent[0][1]


def test_late_rows_in_the_lookback_window_reupload_only_that_day(site: Site, bucket: str) -> None:
    config = site.config()
    run(config, target=f"s3://{bucket}/pub", now=DURING)
    site.sql("INSERT INTO etc VALUES ('2022-09-04 12:00:00.5+09', 21.5, 40.0)")
    requests = Requests()
    run(config, target=requests.target(f"s3://{bucket}/pub", config), now=DURING)
    assert sorted(u.rsplit("/", 1)[-1] for u in requests.data_puts()) == [
        "1_etc_2022-09-04.csv",
        "1_etc_2022-09-04.parquet",
    ]
    assert verify(open_target(f"s3://{bucket}/pub")).clean


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            "INSERT INTO etc VALUES ('2022-09-01 12:00:00.5+09', 1.0, 2.0)", id="late-insert"
        ),
        pytest.param(
            'UPDATE etc SET "SENSOR1_TEMPERATURE" = "SENSOR1_TEMPERATURE" + 1 '
            "WHERE \"TIMESTAMP\" = '2022-09-01 12:00+09'",
            id="update-in-place",
        ),
        pytest.param("DELETE FROM etc WHERE \"TIMESTAMP\" = '2022-09-01 12:00+09'", id="delete"),
        pytest.param(
            "DELETE FROM etc WHERE \"TIMESTAMP\" = '2022-09-01 12:00+09'; "
            "INSERT INTO etc VALUES ('2022-09-01 12:00:01+09', 25.0, 50.0)",
            id="delete-insert-same-count",
        ),
    ],
)
def test_full_check_finds_changes_outside_the_window(site: Site, bucket: str, change: str) -> None:
    target, config = f"s3://{bucket}/pub", site.config()
    run(config, target=target, now=AFTER)
    run(config, target=target, now=AFTER, full_check=True)  # first full check: baseline
    site.sql(change)
    requests = Requests()
    seen = requests.target(target, config)
    assert run(config, target=seen, now=AFTER).partitions == 0  # outside the window
    assert requests.data_puts() == []
    report = run(config, target=requests.target(target, config), now=AFTER, full_check=True)
    assert [j.day for j in report.jobs] == ["2022-09-01"]
    assert {u.rsplit("/", 1)[-1] for u in requests.data_puts()} == {
        "1_etc_2022-09-01.csv",
        "1_etc_2022-09-01.parquet",
    }
    assert run(site.config(), target=target, now=AFTER, full_check=True).jobs == []


def test_a_same_size_change_is_republished(site: Site, bucket: str) -> None:
    target, config = f"s3://{bucket}/pub", site.config()
    key = "pub/data/csv/site=1/table=etc/date=2022-09-04/1_etc_2022-09-04.csv"
    at = "WHERE \"TIMESTAMP\" = '2022-09-04 01:00+09'"
    site.sql(f'UPDATE etc SET "SENSOR1_HUMIDITY" = 12.25 {at}')
    run(config, target=target, now=DURING)
    before = get(bucket, key)
    site.sql(f'UPDATE etc SET "SENSOR1_HUMIDITY" = 12.75 {at}')
    requests = Requests()
    run(config, target=requests.target(target, config), now=DURING)
    after = get(bucket, key)
    assert len(after) == len(before) and after != before  # same size, new content
    assert [u.rsplit("/", 1)[-1] for u in requests.data_puts()] == [
        "1_etc_2022-09-04.parquet",
        "1_etc_2022-09-04.csv",
    ]


# -- crashes and errors ----------------------------------------------------------------------


def copy_prefix(bucket: str, source: str, dest: str) -> None:
    client = boto3.client("s3")
    for key in keys(bucket, source):
        client.copy_object(
            Bucket=bucket, Key=dest + key[len(source) :], CopySource={"Bucket": bucket, "Key": key}
        )


def assert_consistent(bucket: str, prefix: str) -> None:
    """The reader rule: every file named through the catalog has the sha256 its manifest
    entry gives, or the one its site journal's entry for the same table, day and format
    gives (a day whose files are being replaced)."""
    if prefix + "catalog.json" not in keys(bucket, prefix):
        return  # readers start at the catalog: without one nothing is published yet
    present = keys(bucket, prefix)
    for key, entry in named_files(bucket, prefix).items():
        accepted = {entry["sha256"]}
        journal = f"{prefix}sites/{entry['site']}/journal.json"
        if journal in present:
            changes = json.loads(get(bucket, journal))["changes"].get(entry["table"], [])
            for change in changes:
                if change["date"] == entry["date"] and entry["format"] in change["files"]:
                    accepted.add(change["files"][entry["format"]]["sha256"])
        assert hashlib.sha256(get(bucket, key)).hexdigest() in accepted, key


def published_state(bucket: str, prefix: str) -> dict[str, Any]:
    found = manifests_via_catalog(bucket, prefix)
    for manifest in found.values():
        manifest.pop("generated_at")
    return found


@pytest.mark.parametrize("scenario", ["first-publish", "re-export"])
def test_a_crash_at_any_request_leaves_a_consistent_publish(
    site: Site, bucket: str, scenario: str
) -> None:
    def publish(prefix: str, requests: Requests | None = None, **options: Any) -> None:
        config, uri = site.config(**options), f"s3://{bucket}/{prefix}"
        target = requests.target(uri, config) if requests else uri
        run(config, target=target, tables=["etc"], now=DURING)

    publish("before")  # the state a re-export starts from
    site.sql("INSERT INTO etc VALUES ('2022-09-04 12:00:00.5+09', 1.0, 2.0)")
    publish("reference")  # what a fault-free run publishes
    expected = published_state(bucket, "reference/")

    def start(prefix: str) -> None:
        if scenario == "re-export":
            copy_prefix(bucket, "before/", prefix + "/")

    start("probe")
    probe = Requests()
    publish("probe", probe, attempts=1)
    total = len(probe.sent)
    assert total > 10

    for k in range(1, total + 1):
        prefix = f"k{k}"
        start(prefix)
        dying = Requests(
            respond=lambda n, request, k=k: (
                # The process dies at request k: it and every later request fail.
                error_response(request, 500, "InternalError") if n >= k else None
            ),
        )
        with pytest.raises(PublishError):
            publish(prefix, dying, attempts=1)
        assert_consistent(bucket, prefix + "/")
        # The same plain command: the failed run's lease is taken over, its owner run ended.
        publish(prefix)
        assert published_state(bucket, prefix + "/") == expected, f"crash at request {k}"
        assert verify(open_target(f"s3://{bucket}/{prefix}")).clean
        assert stale_pages(open_target(f"s3://{bucket}/{prefix}")) == [], f"crash at {k}"


def test_transient_5xx_is_retried(site: Site, bucket: str) -> None:
    requests = Requests(
        respond=lambda n, request: (
            error_response(request, 503, "SlowDown") if n in (3, 4) else None
        ),
    )
    config = site.config()
    run(config, target=requests.target(f"s3://{bucket}/pub", config), now=AFTER)
    assert len(requests.sent) > 4
    assert verify(open_target(f"s3://{bucket}/pub")).clean


def test_persistent_5xx_gives_up_and_keeps_the_previous_publish(site: Site, bucket: str) -> None:
    run(site.config(), target=f"s3://{bucket}/pub", now=AFTER)
    before = {k: v["ETag"] for k, v in keys(bucket).items()}
    requests = Requests(
        respond=lambda n, request: (
            error_response(request, 503, "SlowDown") if request.method == "PUT" else None
        ),
    )
    config = site.config(attempts=3)
    with pytest.raises(
        PublishError,
        match=r"throttling requests \(SlowDown, HTTP 503\) after 3 attempt\(s\); run again",
    ):
        run(config, target=requests.target(f"s3://{bucket}/pub", config), now=AFTER, rebuild=True)
    puts = [u for m, u in requests.sent if m == "PUT"]
    assert len(puts) == 3  # the first PUT (the lock), tried three times, then stop
    assert {k: v["ETag"] for k, v in keys(bucket).items()} == before


def test_403_fails_at_once_with_a_clear_message(site: Site, bucket: str) -> None:
    requests = Requests(respond=lambda n, request: error_response(request, 403, "AccessDenied"))
    config = site.config()
    with pytest.raises(PublishError, match="AccessDenied \\(403\\); check the credentials"):
        run(config, target=requests.target(f"s3://{bucket}/pub", config), now=AFTER)
    assert len(requests.sent) == 1


def test_missing_bucket_is_one_clear_line(
    site: Site, s3_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(site="1", lock_minutes=180, attempts=5))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "run",
            "--config",
            str(config),
            "--target",
            "s3://no-such-bucket/pub",
        ],
        capture_output=True,
        text=True,
        env={**s3_env, "SITE_DSN": site.dsn, "PATH": "/usr/bin"},
        timeout=120,
    )
    assert result.returncode == 1
    assert "NoSuchBucket (404); create the bucket or fix the target URI" in result.stderr
    assert "Traceback" not in result.stderr


# -- locks and concurrency -------------------------------------------------------------------


def test_a_held_lock_stops_the_second_run(
    site: Site, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    target = open_target(f"s3://{bucket}/pub")
    with site_lease(target, "1", timedelta(hours=1)):
        before = keys(bucket)
        config = tmp_path / "c.toml"
        config.write_text(CONFIG.format(site="1", lock_minutes=180, attempts=5))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "exporter",
                "run",
                "--config",
                str(config),
                "--target",
                f"s3://{bucket}/pub",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**s3_env, "SITE_DSN": site.dsn, "PATH": "/usr/bin"},
        )
        assert result.returncode == 3, result.stderr
        assert "site 1 is being published by another run" in result.stderr
        assert keys(bucket) == before
    assert "pub/locks/1.json" not in keys(bucket)


def test_a_stale_lock_is_taken_over(site: Site, bucket: str) -> None:
    target = open_target(f"s3://{bucket}/pub")
    stale = json.dumps(
        {
            "owner": "dead:1:x",
            "started": "2020-01-01T00:00:00+00:00",
            "expires": "2020-01-01T01:00:00+00:00",
        }
    ).encode()
    target.put("locks/1.json", stale, "application/json")
    run(site.config(), target=f"s3://{bucket}/pub", now=AFTER)
    assert "pub/sites/1/manifest.json" in keys(bucket)
    assert "pub/locks/1.json" not in keys(bucket)


def test_concurrent_runs_on_one_site_publish_once(site: Site, bucket: str) -> None:
    results: list[object] = []
    config = site.config()  # loaded once: the threads must not race on writing the file

    def one() -> None:
        try:
            results.append(run(config, target=f"s3://{bucket}/pub", now=AFTER))
        except BaseException as exc:  # a LockHeld is expected; anything else fails below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and all(isinstance(r, RunReport | LockHeld) for r in results)
    published = [r for r in results if isinstance(r, RunReport)]
    # Either they overlapped (one lost the lock) or ran one after the other (no-op second).
    exported = sorted(r.partitions - r.unchanged for r in published)
    assert exported in ([2 * DAYS], [0, 2 * DAYS])
    assert verify(open_target(f"s3://{bucket}/pub")).clean


def test_two_sites_publish_concurrently_and_both_are_listed(
    pg: PgCluster, site: Site, bucket: str, tmp_path: Path
) -> None:
    other = Site(pg, "s_other_" + bucket.replace("-", "_")[:30], tmp_path / "o")
    (tmp_path / "o").mkdir()
    configs = [site.config("1"), other.config("2")]
    errors: list[BaseException] = []

    def one(config: Config) -> None:
        try:
            run(config, target=f"s3://{bucket}/pub", now=AFTER)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(c,)) for c in configs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    catalog = json.loads(get(bucket, "pub/catalog.json"))
    assert [s["site"] for s in catalog["sites"]] == ["1", "2"]
    assert verify(open_target(f"s3://{bucket}/pub")).clean


# -- verify and prune ------------------------------------------------------------------------


def test_verify_names_corrupt_missing_and_extra_objects(
    site: Site, bucket: str, s3_env: dict[str, str]
) -> None:
    run(site.config(), target=f"s3://{bucket}/pub", now=AFTER)
    client = boto3.client("s3")
    corrupt = "data/csv/site=1/table=etc/date=2022-09-02/1_etc_2022-09-02.csv"
    missing = "data/parquet/site=1/table=bank/date=2022-09-03/1_bank_2022-09-03.parquet"
    extra = "data/csv/site=1/table=old/date=2022-09-01/1_old_2022-09-01.csv"
    client.put_object(Bucket=bucket, Key="pub/" + corrupt, Body=b"timestamp\n")
    client.delete_object(Bucket=bucket, Key="pub/" + missing)
    client.put_object(Bucket=bucket, Key="pub/" + extra, Body=b"x\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "verify", "--target", f"s3://{bucket}/pub"],
        capture_output=True,
        text=True,
        env={**s3_env, "PATH": "/usr/bin"},
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"missing: {missing}",
        f"differs: {corrupt}",
        f"extra: {extra}",
        "checked 15 file(s): 3 problem(s)",
    ]
    # --prune deletes the extra object only; --rebuild repairs the other two.
    run(site.config(), target=f"s3://{bucket}/pub", now=AFTER, prune_unnamed=True, rebuild=True)
    assert verify(open_target(f"s3://{bucket}/pub")).clean


def test_unnamed_objects_are_reported_by_verify_and_pruned_on_request(
    site: Site, bucket: str
) -> None:
    run(site.config(), target=f"s3://{bucket}/pub", now=AFTER)
    stray = "data/parquet/site=1/table=pcs/date=2022-09-01/1_pcs_2022-09-01.parquet"
    boto3.client("s3").put_object(Bucket=bucket, Key="pub/" + stray, Body=b"old")
    assert verify(open_target(f"s3://{bucket}/pub")).extra == [stray]
    report = run(site.config(), target=f"s3://{bucket}/pub", now=AFTER)
    assert report.unnamed == [] and "pub/" + stray in keys(bucket)  # a plain run keeps it
    # --prune deletes it, even when there is nothing to export.
    report = run(site.config(), target=f"s3://{bucket}/pub", now=AFTER, prune_unnamed=True)
    assert report.unnamed == [stray] and report.pruned
    assert "pub/" + stray not in keys(bucket)
    assert verify(open_target(f"s3://{bucket}/pub")).clean


# -- the source going away mid-extract -------------------------------------------------------


def test_a_killed_connection_names_the_day_and_publishes_nothing_of_it(
    site: Site, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"s3://{bucket}/pub"
    run(site.config(), target=target, now=DURING)
    before = {k: v["ETag"] for k, v in keys(bucket).items()}
    site.sql("INSERT INTO etc VALUES ('2022-09-04 12:00:00.5+09', 1.0, 2.0)")
    blocker = psycopg.connect(site.dsn)

    def kill_the_reader() -> None:
        # The extract waits on the table lock; terminate its backend as an operator would.
        with psycopg.connect(site.dsn, autocommit=True) as admin:
            for _ in range(400):
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchall()
                if killed:
                    break
                time.sleep(0.05)
        blocker.rollback()

    killer = threading.Thread(target=kill_the_reader)
    real_read = connectorx.read_sql

    first = threading.Lock()

    def read_and_die(*args: Any, **kwargs: Any) -> Any:
        if first.acquire(blocking=False):  # slices are read two at a time: lock once
            blocker.execute("LOCK TABLE etc IN ACCESS EXCLUSIVE MODE")
            killer.start()
        return real_read(*args, **kwargs)

    monkeypatch.setattr(connectorx, "read_sql", read_and_die)
    try:
        with pytest.raises(SourceError, match=r"site 1, table etc, day 2022-09-04: read failed"):
            run(site.config(), target=target, now=DURING, tables=["etc"])
    finally:
        killer.join()
        blocker.close()
    monkeypatch.setattr(connectorx, "read_sql", real_read)
    assert {k: v["ETag"] for k, v in keys(bucket).items()} == before
    report = run(site.config(), target=target, now=DURING)
    assert report.failed == [] and verify(open_target(target)).clean
    etc = manifests_via_catalog(bucket)["1"]["tables"]["etc"]
    assert next(p for p in etc["partitions"] if p["date"] == "2022-09-04")["rows"] == 145
