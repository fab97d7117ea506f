"""The pure planner and the config loader, in-process: no database, no subprocess."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest

from exporter.config import load
from exporter.errors import ConfigError
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
]


@pytest.mark.parametrize("case", CASES)
def test_plan_table(case: Case) -> None:
    options = {"lookback_days": 0, "schema_hash": PUBLISHED.schema_hash, **case.options}
    jobs = plan_table(
        site="1",
        table="rack",
        timezone=SEOUL,
        extent=EXTENT,
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


GOOD = """
[export]
target = "./public"
[sites.1]
dsn = "sqlite:one.sqlite"
[sites.1.tables.rack]
"""


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        pytest.param("[export\n", {}, "not valid TOML", id="toml"),
        pytest.param(GOOD + "colour = 1\n", {}, "colour", id="unknown-key"),
        pytest.param(
            GOOD.replace("sites.1", "sites.Bad"), {}, "invalid site name 'Bad'", id="site-name"
        ),  # fmt: skip
        pytest.param(
            GOOD + '[sites.1.tables."ra ck"]\n', {}, "invalid table name 'ra ck'", id="table-name"
        ),  # fmt: skip
        pytest.param(
            GOOD.replace('dsn = "', 'timezone = "Mars/Base"\ndsn = "'), {}, "Mars/Base", id="zone"
        ),  # fmt: skip
        pytest.param(
            GOOD.replace("sqlite:one.sqlite", "${NOPE}"),
            {},
            "environment variable NOPE is not set",
            id="unset-variable",
        ),  # fmt: skip
        pytest.param(
            GOOD.replace("sqlite:one.sqlite", "postgresql://u:secret@h/db"),
            {},
            "password",
            id="literal-password",
        ),  # fmt: skip
        pytest.param(
            GOOD.replace("[export]", "[export]\nlookback_days = -1"),
            {},
            "export.lookback_days",
            id="negative-count",
        ),  # fmt: skip
    ],
)
def test_config_errors_name_file_and_key(
    tmp_path: Path, toml: str, env: dict, message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load(path, env=env)
    text = str(caught.value)
    assert str(path) in text and message in text and "secret" not in text


def test_a_good_config_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD)
    config = load(path, env={})
    assert config.target == "./public" and config.lock_minutes == 5
    assert [s.id for s in config.sites] == ["1"]
    assert config.sites[0].timezone == SEOUL
    assert [t.name for t in config.sites[0].tables] == ["rack"]
