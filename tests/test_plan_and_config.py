"""The pure planner and the config loader, in-process: no database, no subprocess."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest

from exporter.config import load
from exporter.errors import ConfigError
from exporter.layout import NAME_RULE
from exporter.manifest import FileEntry, Partition, TableManifest, encode_stats
from exporter.plan import plan_table

SEOUL = "Asia/Seoul"
# Local 2022-09-05 12:00 in Seoul.
NOW = datetime(2022, 9, 5, 3, tzinfo=UTC)
EXTENT = (datetime(2022, 9, 1, 0, tzinfo=UTC), datetime(2022, 9, 5, 2, tzinfo=UTC))  # 09-01..05


def day(d: str, *, complete: bool = True, fingerprint: dict | None = None) -> Partition:
    files = {"csv": FileEntry(f"data/csv/{d}.csv", 1, "x")}
    return Partition(d, 1, complete, f"{d}T00:00:00+09:00", f"{d}T01:00:00+09:00", 0,
                     fingerprint or {"rows": 1}, encode_stats({}), files)  # fmt: skip


PUBLISHED = TableManifest((), (), tuple(day(f"2022-09-0{i}") for i in (1, 2, 3)))


class Case(NamedTuple):
    published: TableManifest | None
    options: dict
    want: list[tuple[str, str]]
    extent: tuple[datetime, datetime] | None = EXTENT


CASES = [
    pytest.param(
        Case(
            None,
            {},
            [
                ("2022-09-01", "new day"),
                ("2022-09-02", "new day"),
                ("2022-09-03", "new day"),
                ("2022-09-04", "new day"),
                ("2022-09-05", "new day"),
            ],
        ),  # fmt: skip
        id="first-publish",
    ),
    pytest.param(
        Case(PUBLISHED, {}, [("2022-09-04", "new day"), ("2022-09-05", "new day")]),
        id="only-new-days",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"lookback_days": 3},
            [
                ("2022-09-03", "inside lookback window"),
                ("2022-09-04", "new day"),
                ("2022-09-05", "new day"),
            ],
        ),  # fmt: skip
        id="lookback",
    ),
    pytest.param(
        Case(
            TableManifest((), (), (day("2022-09-01"), day("2022-09-02", complete=False))),
            {},
            [
                ("2022-09-02", "incomplete when published"),
                ("2022-09-03", "new day"),
                ("2022-09-04", "new day"),
                ("2022-09-05", "new day"),
            ],
        ),  # fmt: skip
        id="incomplete",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"since": date(2022, 9, 2), "until": date(2022, 9, 3)},
            [("2022-09-02", "requested range"), ("2022-09-03", "requested range")],
        ),
        id="range",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"rebuild": True, "until": date(2022, 9, 2)},
            [("2022-09-01", "rebuild"), ("2022-09-02", "rebuild")],
        ),
        id="rebuild",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"schema_hash": "sha256:other", "until": date(2022, 9, 1)},
            [("2022-09-01", "rebuild")],
        ),
        id="schema-changed",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"fingerprints": {"2022-09-01": {"rows": 1}, "2022-09-02": {"rows": 2}}},
            [
                ("2022-09-02", "source changed"),
                ("2022-09-03", "no rows any more"),
                ("2022-09-04", "new day"),
                ("2022-09-05", "new day"),
            ],
        ),
        id="full-check",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"pending": {"2022-09-01": "rebuild"}},
            [("2022-09-01", "rebuild"), ("2022-09-04", "new day"), ("2022-09-05", "new day")],
        ),
        id="an-interrupted-run's-days",
    ),
    pytest.param(Case(None, {}, [], extent=None), id="no-rows-yet"),
    pytest.param(Case(PUBLISHED, {}, [], extent=None), id="no-rows-any-more-unchecked"),
    pytest.param(
        Case(
            PUBLISHED,
            {"since": date(2022, 9, 4)},
            [("2022-09-04", "requested range"), ("2022-09-05", "requested range")],
        ),
        id="since-only",
    ),
    pytest.param(
        Case(
            PUBLISHED,
            {"until": date(2022, 9, 1), "pending": {"2022-09-03": "rebuild"}},
            [("2022-09-01", "requested range"), ("2022-09-03", "requested range")],
        ),
        id="pending-days-join-a-range",
    ),
    pytest.param(
        Case(
            TableManifest((), (), (day("2022-09-01"), day("2022-09-02", complete=False))),
            {"lookback_days": 5},
            [
                ("2022-09-01", "inside lookback window"),
                ("2022-09-02", "incomplete when published"),
                ("2022-09-03", "new day"),
                ("2022-09-04", "new day"),
                ("2022-09-05", "new day"),
            ],
        ),  # fmt: skip
        id="incomplete-wins-over-lookback",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_plan_table(case: Case) -> None:
    options = {"lookback_days": 0, "schema_hash": PUBLISHED.schema_hash, **case.options}
    jobs = plan_table(
        site="1",
        table="rack",
        timezone=SEOUL,
        extent=case.extent,
        published=case.published,
        now=NOW,
        settle=timedelta(minutes=60),
        **options,
    )
    assert [(j.day, j.reason) for j in jobs] == case.want


def test_a_day_is_complete_after_its_end_plus_the_settle_margin() -> None:
    def complete(now: datetime) -> bool:
        [job] = plan_table(site="1", table="rack", timezone=SEOUL, extent=EXTENT, published=None,
                           schema_hash="", now=now, settle=timedelta(minutes=60), lookback_days=0,
                           since=date(2022, 9, 4), until=date(2022, 9, 4))  # fmt: skip
        return job.complete

    midnight = datetime(2022, 9, 4, 15, tzinfo=UTC)  # 09-05 00:00 in Seoul
    assert not complete(midnight + timedelta(minutes=59))
    assert complete(midnight + timedelta(minutes=60))


def test_a_day_across_a_clock_change_has_its_local_bounds() -> None:
    # 2022-10-30 in Berlin has 25 hours: 00:00 CEST (+02) to 00:00 CET (+01).
    extent = (datetime(2022, 10, 30, 0, tzinfo=UTC), datetime(2022, 10, 30, 12, tzinfo=UTC))
    [job] = plan_table(site="1", table="rack", timezone="Europe/Berlin", extent=extent,
                       published=None, schema_hash="", now=NOW, settle=timedelta(minutes=60),
                       lookback_days=0)  # fmt: skip
    assert (job.day, job.reason, job.complete) == ("2022-10-30", "new day", False)
    assert job.start == datetime(2022, 10, 29, 22, tzinfo=UTC)
    assert job.end == datetime(2022, 10, 30, 23, tzinfo=UTC)


GOOD = """
[export]
target = "./public"
[sites.1]
dsn = "sqlite:one.sqlite"
[sites.1.tables.rack]
"""


DSN_FORMS = "expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME or sqlite:PATH"


def with_dsn(dsn: str) -> str:
    return GOOD.replace("sqlite:one.sqlite", dsn)


# Each message whole, as the user reads it after "Error: " ({path} is the file).
CONFIG_ERRORS = {
    "unknown-key": (
        "colour = 1\n" + GOOD,
        "colour: unknown key; valid keys here: dataset, export, sites",
    ),
    "not-a-table": ("export = 1\n[sites.1]\n", "export: must be a table"),
    "unknown-table-key": (
        GOOD + "colour = 1\n",
        "sites.1.tables.rack.colour: unknown key; valid keys here: "
        "source, timestamp, keys, include, exclude, columns",
    ),
    "site-name": (
        GOOD.replace("sites.1", "sites.Bad"),
        f"sites.Bad: invalid site name 'Bad'; use {NAME_RULE} (e.g. 'rack', 'site-2')",
    ),
    "table-name": (
        GOOD + '[sites.1.tables."ra ck"]\n',
        f"sites.1.tables.ra ck: invalid table name 'ra ck'; use {NAME_RULE} "
        "(e.g. 'rack', 'site-2')",
    ),
    "zone": (
        GOOD.replace('dsn = "', 'timezone = "Mars/Base"\ndsn = "'),
        "sites.1.timezone: unknown time zone 'Mars/Base'; "
        "use an IANA name such as 'Asia/Seoul' or 'UTC'",
    ),
    "no-site": ("[export]\n", "sites: no site configured; add a [sites.<id>] table"),
    "no-table": (
        '[sites.1]\ndsn = "sqlite:one.sqlite"\n',
        "sites.1.tables: add at least one [sites.<id>.tables.<name>] table",
    ),
    "no-dsn": (
        "[sites.1.tables.rack]\n",
        'sites.1.dsn: is required: a string such as "${ESS1_DSN}"',
    ),
    "unset-variable": (
        with_dsn("${NOPE}"),
        "sites.1.dsn: environment variable NOPE is not set; export it or give a default",
    ),
    "literal-password": (
        with_dsn("postgresql://u:secret@h/db"),
        "sites.1.dsn: holds a literal password (in the URL, a password= parameter or a "
        '${VAR:-default}); put the DSN in an environment variable and write dsn = "${ESS1_DSN}"',
    ),
    "dsn-scheme": (
        with_dsn("mysql://h/db"),
        f"sites.1.dsn: unsupported DSN scheme 'mysql'; {DSN_FORMS}",
    ),
    "dsn-port": (
        with_dsn("postgresql://h:99999/db"),
        f"sites.1.dsn: malformed DSN: port '99999' is not a number from 1 to 65535; {DSN_FORMS}",
    ),
    "dsn-host": (
        with_dsn("postgresql:///db"),
        f"sites.1.dsn: malformed DSN: the host is missing; {DSN_FORMS}",
    ),
    "dsn-database": (
        with_dsn("postgresql://h:5432/"),
        f"sites.1.dsn: malformed DSN: the database name is missing; {DSN_FORMS}",
    ),
    "sqlite-file": (
        with_dsn("sqlite:"),
        f"sites.1.dsn: malformed DSN: no file after 'sqlite:'; {DSN_FORMS}",
    ),
    "negative-count": (
        GOOD.replace("[export]", "[export]\nlookback_days = -1"),
        "export.lookback_days: must be a whole number >= 0",
    ),
    "formats": (
        GOOD.replace("[export]", '[export]\nformats = ["xlsx"]'),
        "export.formats: must be a non-empty list of ['parquet', 'csv']",
    ),
    "keys": (
        GOOD + 'keys = "BANK_ID"\n',
        "sites.1.tables.rack.keys: must be a list of strings",
    ),
    "language": (
        GOOD + '[dataset]\nlanguage = "fr"\n',
        "dataset.language: must be one of en, ko",
    ),
    "s3-path-style": (
        GOOD + '[export.s3]\npath_style = "yes"\n',
        "export.s3.path_style: must be true or false",
    ),
    "s3-checksum": (
        GOOD + '[export.s3]\nchecksum = "always"\n',
        "export.s3.checksum: must be 'when_supported' or 'when_required'",
    ),
    "s3-attempts": (
        GOOD + "[export.s3]\nmax_attempts = 30\n",
        "export.s3.max_attempts: must be between 1 and 20",
    ),
}


@pytest.mark.parametrize(("toml", "message"), CONFIG_ERRORS.values(), ids=CONFIG_ERRORS)
def test_config_errors_name_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert str(caught.value) == f"{path}: {message}"


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert str(caught.value) == f"config file {path} not found; pass --config FILE"
    path.write_text("[export\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert str(caught.value).startswith(f"{path}: not valid TOML: ")


def test_a_good_config_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD)
    config = load(path, env={})
    assert config.target == "./public" and config.lock_minutes == 5
    assert [s.id for s in config.sites] == ["1"]
    assert config.sites[0].timezone == SEOUL
    assert [t.name for t in config.sites[0].tables] == ["rack"]
