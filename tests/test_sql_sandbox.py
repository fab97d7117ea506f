"""`ess-export sql` tried as an attacker would: nothing outside the dataset is read or revealed.

Files holding a canary string lie outside the dataset (an absolute folder, the working
directory, $HOME, a FIFO). Every statement of the corpus must fail with exit 2 / QueryError,
and the canary must appear nowhere: not on stdout or stderr, not in the exception's text,
not in an exception chained to it. The same statement over a present and an absent file
must fail with the same message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from exporter.cli import main
from exporter.query import Dataset, QueryError

CANARY = "CANARY-5f0c1e7d-outside-the-dataset"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Place:
    """A dataset copy with canary files around it."""

    dataset: Path
    outside: Path
    work: Path
    """The working directory of the runs: holds a canary of its own."""
    home: Path
    cache: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "ESS_EXPORT_CACHE": str(self.cache)}


@pytest.fixture(scope="module")
def place(published: Path, tmp_path_factory: pytest.TempPathFactory) -> Place:
    base = tmp_path_factory.mktemp("sandbox")
    spot = Place(base / "ds", base / "outside", base / "work", base / "home", base / "cache")
    shutil.copytree(published, spot.dataset)
    for folder in (spot.outside, spot.work, spot.home):
        folder.mkdir()
        (folder / "canary.csv").write_text(f"secret\n{CANARY}\n")
        (folder / ".canary.csv").write_text(f"{CANARY},x\n")
    (spot.outside / "canary.json").write_text(f'[{{"secret": "{CANARY}"}}]')
    (spot.outside / "canary.ndjson").write_text(f'{{"secret": "{CANARY}"}}\n')
    (spot.outside / "canary.txt").write_text(CANARY)
    duckdb.sql(f"COPY (SELECT '{CANARY}' AS secret) TO '{spot.outside / 'canary.parquet'}'")
    os.mkfifo(spot.outside / "fifo")
    return spot


def day_file(place: Place) -> str:
    """A file the views read (allowed): the base of path-traversal tricks."""
    return str(
        place.dataset / "data/parquet/site=1/table=etc/date=2022-09-01/1_etc_2022-09-01.parquet"
    )


# {o}: the outside folder; {d}: the dataset root; {f}: a dataset file; {c}: a canary CSV.
CORPUS: dict[str, str] = {
    # every file-reading table function, absolute paths
    "read_csv": "SELECT * FROM read_csv('{o}/canary.csv')",
    "read_csv_auto": "SELECT * FROM read_csv_auto('{o}/canary.csv')",
    "read_csv-line-in-error": "SELECT * FROM read_csv('{o}/canary.csv', max_line_size=5)",
    "read_json": "SELECT * FROM read_json('{o}/canary.json', format='array')",
    "read_json_auto": "SELECT * FROM read_json_auto('{o}/canary.json')",
    "read_json_objects": "SELECT * FROM read_json_objects('{o}/canary.json')",
    "read_ndjson": "SELECT * FROM read_ndjson('{o}/canary.ndjson')",
    "read_ndjson_objects": "SELECT * FROM read_ndjson_objects('{o}/canary.ndjson')",
    "read_parquet": "SELECT * FROM read_parquet('{o}/canary.parquet')",
    "parquet_metadata": "SELECT * FROM parquet_metadata('{o}/canary.parquet')",
    "parquet_schema": "SELECT * FROM parquet_schema('{o}/canary.parquet')",
    "read_text": "SELECT * FROM read_text('{o}/canary.txt')",
    "read_blob": "SELECT * FROM read_blob('{o}/canary.txt')",
    "sniff_csv": "SELECT * FROM sniff_csv('{o}/canary.csv')",
    "glob": "SELECT * FROM glob('{o}/*')",
    "proc-environ": "SELECT * FROM read_text('/proc/self/environ')",
    # other spellings of a path
    "relative": "SELECT * FROM read_csv('canary.csv')",
    "dot-relative": "SELECT * FROM read_text('./canary.csv')",
    "parent-relative": "SELECT * FROM read_csv('../outside/canary.csv')",
    "home": "SELECT * FROM read_csv('~/canary.csv')",
    "home-glob": "SELECT * FROM read_json('~/.*')",
    "glob-pattern": "SELECT * FROM read_csv('{o}/*.csv')",
    "glob-brackets": "SELECT * FROM read_text('{o}/canary.[ct]*')",
    "file-url": "SELECT * FROM read_csv('file://{o}/canary.csv')",
    "out-of-the-root": "SELECT * FROM read_csv('{d}/data/../../outside/canary.csv')",
    "out-of-a-day-file": "SELECT * FROM read_text('{f}/../../../../../../outside/canary.txt')",
    "list-with-a-day-file": "SELECT * FROM read_parquet(['{f}', '{o}/canary.parquet'])",
    "replacement-scan": "SELECT * FROM '{o}/canary.csv'",
    "replacement-scan-parquet": "FROM '{o}/canary.parquet'",
    # through another statement or function
    "query": "SELECT * FROM query('SELECT * FROM read_csv(''{o}/canary.csv'')')",
    "query_table": "SELECT * FROM query_table('{o}/canary.csv')",
    "cte": "WITH x AS (SELECT * FROM read_csv('{o}/canary.csv')) SELECT * FROM x",
    "subquery": "SELECT count(*) FROM rack_1 WHERE rack_soc IN (SELECT 1 FROM read_csv('{c}'))",
    "union": "SELECT 'a' AS s UNION ALL SELECT secret FROM read_csv('{o}/canary.csv')",
    "describe-query": "DESCRIBE SELECT * FROM read_text('{o}/canary.txt')",
    "summarize-query": "SUMMARIZE SELECT * FROM read_csv('{o}/canary.csv')",
    "getenv": "SELECT getenv('HOME')",
    # statements other than a SELECT
    "copy-to": "COPY (SELECT 1) TO '{o}/written.csv'",
    "copy-from": "COPY rack_1 FROM '{o}/canary.csv'",
    "export": "EXPORT DATABASE '{o}/export'",
    "attach": "ATTACH '{o}/canary.csv' AS x",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "load-file": "LOAD '{o}/canary.txt'",
    "set": "SET enable_external_access = true",
    "set-directories": "SET allowed_directories = ['{o}']",
    "set-variable": "SET VARIABLE p = '{o}/canary.csv'",
    "reset": "RESET enable_external_access",
    "pragma": "PRAGMA temp_directory = '{o}'",
    "call": "CALL read_text('{o}/canary.txt')",
    "create": "CREATE TABLE t AS SELECT * FROM read_csv('{o}/canary.csv')",
    "create-macro": "CREATE MACRO m() AS TABLE SELECT * FROM read_csv('{o}/canary.csv')",
    "explain-analyze": "EXPLAIN ANALYZE SELECT * FROM read_csv('{o}/canary.csv')",
    "detach": "DETACH memory",
    # several statements, comments
    "two-statements": "SELECT 1; SELECT * FROM read_csv('{o}/canary.csv')",
    "after-a-comment": "SELECT 1 /* a comment; */; COPY (SELECT 1) TO '{o}/written.csv'",
    "after-a-line-comment": "SELECT 1 -- a comment\n; ATTACH '{o}/canary.csv'",
    "comment-hides-nothing": "/* SELECT 1; */ SELECT * FROM read_csv('{o}/canary.csv') --",
}


def statement(place: Place, name: str) -> str:
    return CORPUS[name].format(
        o=place.outside, d=place.dataset, f=day_file(place), c=place.outside / "canary.csv"
    )


@pytest.fixture(scope="module")
def dataset(place: Place) -> Iterator[Dataset]:
    with Dataset.open(str(place.dataset)) as opened:
        yield opened


@pytest.fixture()
def at_work(place: Place, monkeypatch: pytest.MonkeyPatch) -> Place:
    monkeypatch.chdir(place.work)
    monkeypatch.setenv("HOME", str(place.home))
    return place


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is not None and id(item) not in seen:
            seen.add(id(item))
            yield item
            todo += [item.__cause__, item.__context__]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("name", list(CORPUS))
def test_python_api_refuses_and_reveals_nothing(
    dataset: Dataset, at_work: Place, name: str
) -> None:
    with pytest.raises(QueryError) as raised:
        dataset.sql(statement(at_work, name))
    error = raised.value
    assert error.exit_code == 2 and "\n" not in str(error)
    assert error.__cause__ is None and error.__context__ is None
    for item in chain(error):
        assert CANARY not in str(item) and CANARY not in repr(item.args)
    assert not (at_work.outside / "written.csv").exists()
    assert not (at_work.outside / "export").exists()


@pytest.mark.parametrize("name", list(CORPUS))
def test_cli_refuses_and_reveals_nothing(at_work: Place, name: str) -> None:
    result = CliRunner().invoke(main, ["sql", str(at_work.dataset), statement(at_work, name)])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert CANARY not in result.stderr


@pytest.mark.parametrize(
    ("present", "absent"),
    [
        ("SELECT * FROM read_csv('{o}/canary.csv')", "SELECT * FROM read_csv('{o}/none.csv')"),
        ("SELECT * FROM read_json('{o}/canary.json')", "SELECT * FROM read_json('{o}/none.json')"),
        ("SELECT * FROM read_text('{o}/*.txt')", "SELECT * FROM read_text('{o}/*.none')"),
        ("SELECT * FROM glob('{o}/canary.*')", "SELECT * FROM glob('{o}/none.*')"),
        ("SELECT * FROM read_csv('~/.canary.csv')", "SELECT * FROM read_csv('~/.none.csv')"),
    ],
    ids=["csv", "json", "glob-text", "glob", "home"],
)  # a FIFO: in a process of its own, below
def test_a_file_present_or_absent_gives_the_same_message(
    dataset: Dataset, at_work: Place, present: str, absent: str
) -> None:
    messages = []
    for text in (present, absent):
        with pytest.raises(QueryError) as raised:
            dataset.sql(text.format(o=at_work.outside))
        messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("the SQL can read only the views (bank, etc, pcs, rack, ")


def run_sql(place: Place, text: str) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, which the timeout ends if it hangs."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", "sql", str(place.dataset), text.format(o=place.outside)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=place.work,
        env={**place.env(), "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("text", "twin"),
    [
        ("SELECT * FROM read_csv('{o}/fifo')", "SELECT * FROM read_csv('{o}/no-fifo')"),
        ("SELECT * FROM read_text('../outside/fifo')", "SELECT * FROM read_text('../no/fifo')"),
        ("SELECT * FROM read_csv('~/canary.csv')", "SELECT * FROM read_csv('~/none.csv')"),
        ("SELECT * FROM read_csv('canary.csv')", "SELECT * FROM read_csv('none.csv')"),
    ],
    ids=["fifo", "fifo-relative", "home", "working-directory"],
)
def test_a_real_process_neither_hangs_nor_reveals(place: Place, text: str, twin: str) -> None:
    """A FIFO would block a reader forever: the process must end, as for an absent file."""
    done, absent = run_sql(place, text), run_sql(place, twin)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("Error: the SQL can read only the views")
    assert CANARY not in done.stderr
    assert (absent.returncode, absent.stdout, absent.stderr) == (2, "", done.stderr)
