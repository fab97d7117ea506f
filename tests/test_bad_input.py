"""Bad input: one clear line, the right exit code, no traceback, no secret anywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support.pgcluster import PgCluster

CANARY = "Canary-pw-7f3a9"


def ess_export(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def site_toml(
    site: str = "1",
    table: str = "rack",
    extra: str = "",
    tz: str = "Asia/Seoul",
    dsn: str = "${ESS1_DSN}",
) -> str:
    return textwrap.dedent(
        f"""\
        [dataset]
        title = "t"
        [sites.{site}]
        timezone = "{tz}"
        dsn = "{dsn}"
        {extra}
        [sites.{site}.tables.{table}]
        keys = ["BANK_ID", "RACK_ID"]
        """
    )


class Case(NamedTuple):
    toml: str
    args: tuple[str, ...]
    dsn: str
    code: int
    message: str


UNREACHABLE = f"postgresql://reader:{CANARY}@127.0.0.1:1/ess1"
CASES = [
    pytest.param(Case("[dataset\ntitle = 1", (), UNREACHABLE, 2, "not valid TOML"), id="toml"),
    pytest.param(
        Case(site_toml(extra="colour = 'red'"), (), UNREACHABLE, 2, "sites.1.colour: unknown key"),
        id="unknown-key",
    ),
    pytest.param(
        Case(site_toml(tz="Mars/Olympus"), (), UNREACHABLE, 2, "unknown time zone 'Mars/Olympus'"),
        id="timezone",
    ),
    pytest.param(
        Case(site_toml(site='".."'), (), UNREACHABLE, 2, "invalid site name '..'"), id="site-dotdot"
    ),
    pytest.param(
        Case(site_toml(site='"a/b"'), (), UNREACHABLE, 2, "invalid site name 'a/b'"),
        id="site-slash",
    ),
    pytest.param(
        Case(site_toml(site="Site1"), (), UNREACHABLE, 2, "invalid site name 'Site1'"),
        id="site-upper",
    ),
    pytest.param(
        Case(site_toml(site='""'), (), UNREACHABLE, 2, "invalid site name ''"), id="site-empty"
    ),
    pytest.param(
        Case(site_toml(table="Rack"), (), UNREACHABLE, 2, "invalid table name 'Rack'"),
        id="table-upper",
    ),
    pytest.param(
        Case(
            site_toml(), ("--site", "9"), UNREACHABLE, 2, "unknown --site '9'; configured sites: 1"
        ),
        id="unknown-site",
    ),
    pytest.param(
        Case(
            site_toml(),
            (),
            f"postgresql://reader:{CANARY}@127.0.0.1:notaport/ess1",
            2,
            "sites.1.dsn: malformed DSN",
        ),
        id="malformed-dsn",
    ),
    pytest.param(
        Case(
            site_toml(dsn=f"postgresql://reader:{CANARY}@localhost/ess1"),
            (),
            "",
            2,
            "holds a literal password",
        ),
        id="literal-password",
    ),
    pytest.param(
        Case(site_toml(), (), "", 2, "environment variable ESS1_DSN is not set"), id="missing-env"
    ),
    pytest.param(
        Case(site_toml(), (), UNREACHABLE, 1, "site 1: cannot connect to PostgreSQL"),
        id="unreachable",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_in_one_line(case: Case, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(case.toml)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if case.dsn:
        env["ESS1_DSN"] = case.dsn
    out = tmp_path / "public"
    result = ess_export("run", "--config", str(config), "--target", str(out), *case.args, env=env)
    assert result.returncode == case.code, result.stderr
    assert case.message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert CANARY not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.stderr
    assert not out.exists() or not any(out.rglob("*.json"))


def test_wrong_password_fails_fast_without_the_secret(pg: PgCluster, tmp_path: Path) -> None:
    pg.create_database("wrongpw")
    config = tmp_path / "c.toml"
    config.write_text(site_toml())
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ESS1_DSN": pg.dsn("wrongpw", password=CANARY),
    }
    result = ess_export("run", "--config", str(config), "--target", str(tmp_path / "p"), env=env)
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p").exists()


def test_missing_config_file_names_the_flag(tmp_path: Path) -> None:
    result = ess_export("plan", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml not found; pass --config FILE" in result.stderr


def test_bad_date_is_a_usage_error(tmp_path: Path) -> None:
    result = ess_export("plan", "--since", "2022-13-01")
    assert result.returncode == 2
    assert "'2022-13-01' is not a date; use YYYY-MM-DD" in result.stderr
