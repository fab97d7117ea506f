"""Every expected failure, as a user meets it: exit code, ONE line on stderr, no traceback,
no secret. The object store, the file system and the configuration each get it wrong here
for real: moto's server, a closed port, TLS spoken to a plain-HTTP port, a store that
answers 503 SlowDown, a read-only mount, a file where a folder should be.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from exporter.config import dsn_secrets, mask, redact

CANARY = "Canary-pw-7f3a9"
Result = subprocess.CompletedProcess[str]


def ess_export(*args: str, env: dict[str, str], cwd: Path) -> Result:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line(result: Result, code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no banner, no traceback
    assert result.stderr.startswith("Error: "), result.stderr
    assert message in result.stderr
    assert CANARY not in result.stdout + result.stderr


class Case(NamedTuple):
    args: tuple[str, ...]
    code: int
    message: str
    env: dict[str, str] = {}


def run_cases(cases: dict[str, Case], cwd: Path, base_env: dict[str, str]) -> dict[str, Result]:
    """Start the processes of a table of cases together: Python's start-up is most of it."""

    def one(case: Case) -> Result:
        return ess_export(*case.args, env={**base_env, **case.env}, cwd=cwd)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cases, pool.map(one, cases.values()), strict=True))


def clean_env(home: Path) -> dict[str, str]:
    # No AWS configuration of this machine, no instance-metadata probe, no credentials.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


# --- object storage ----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _SlowDown(http.server.BaseHTTPRequestHandler):
    """A store under too much load: every request gets S3's 503 SlowDown."""

    BODY = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    def _answer(self) -> None:
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.BODY)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow_down_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_object_store_failures_are_one_line_naming_the_endpoint_and_the_fix(
    s3_endpoint: str, slow_down_endpoint: str, tmp_path: Path
) -> None:
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": CANARY}
    refused = f"http://127.0.0.1:{closed_port()}"
    tls_to_http = s3_endpoint.replace("http://", "https://")
    (tmp_path / "throttled.toml").write_text(
        textwrap.dedent(
            f"""\
            [export]
            target = "s3://slow/ess"
            [export.s3]
            endpoint_url = "{slow_down_endpoint}"
            max_attempts = 2
            [sites.1]
            dsn = "sqlite:src/ess1.sqlite"
            [sites.1.tables.rack]
            """
        )
    )
    cases = {
        "no-credentials": Case(
            ("verify", "--target", "s3://open-data/ess", "--sample", "0.1"),
            1,
            "Error: s3://open-data/ess/catalog.json: no AWS credentials found; set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            {"AWS_ENDPOINT_URL": s3_endpoint},
        ),
        "unreachable-endpoint": Case(
            ("query", "s3://open-data/ess", "--site", "1", "--table", "rack"),
            1,
            f"s3://open-data/ess/catalog.json: cannot connect to {refused}; check "
            "AWS_ENDPOINT_URL or export.s3.endpoint_url",
            {"AWS_ENDPOINT_URL": refused, **keys},
        ),
        "tls": Case(
            ("site", "--target", "s3://open-data/ess"),
            1,
            f"s3://open-data/ess/catalog.json: TLS with {tls_to_http} failed (",
            {"AWS_ENDPOINT_URL": tls_to_http, **keys},
        ),
        "throttled": Case(
            ("run", "--config", "throttled.toml"),
            1,
            f"{slow_down_endpoint} is throttling requests (SlowDown, HTTP 503) after 2 attempt(s); "
            "run again later or raise export.s3.max_attempts",
            keys,
        ),
    }
    from exporter.demo import write_sqlite

    write_sqlite(tmp_path / "src", days=1, interval_s=3600)
    results = run_cases(cases, tmp_path, clean_env(tmp_path))
    for name, case in cases.items():
        assert_one_line(results[name], case.code, case.message)


# --- the local file system and the published tree -----------------------------------------


@pytest.fixture
def read_only_publish(published: Path) -> Iterator[Path]:
    """A copy of a publish on a file system mounted read-only (needs root, as the suite has)."""
    mount = Path(tempfile.mkdtemp(prefix="ess-ro-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mount]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        shutil.copytree(published, mount / "public")
        for page in (mount / "public").rglob("index.html"):
            page.unlink()  # so that `site` has pages to write
        subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
        yield mount / "public"
    finally:
        subprocess.run(["umount", mount], check=True)
        mount.rmdir()


def test_local_and_missing_targets_are_one_line_naming_the_path(
    read_only_publish: Path, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    file_target = "target afile is a file, not a directory; give a directory or s3://BUCKET/PREFIX"
    nothing = (
        "no published dataset at nothing (no catalog.json); give the folder, s3:// or https:// "
        "base that holds one, or publish with `ess-export run --target nothing`"
    )
    cases = {
        "read-only": Case(
            ("site", "--target", str(read_only_publish)),
            1,
            f"Error: cannot write {read_only_publish}/",
        ),
        "file-as-target": Case(("run", "--target", "afile"), 1, f"Error: {file_target}"),
        "file-as-verify-target": Case(("verify", "--target", "afile"), 1, f"Error: {file_target}"),
        **{
            f"{command}-no-catalog": Case((command, "--target", "nothing"), 1, f"Error: {nothing}")
            for command in ("verify", "site")
        },
        "query-no-catalog": Case(
            ("query", "nothing", "--site", "1", "--table", "rack"), 1, f"Error: {nothing}"
        ),
        "sql-no-catalog": Case(("sql", "nothing", "SELECT 1"), 1, f"Error: {nothing}"),
        "query-below-the-root": Case(
            ("query", str(read_only_publish / "sites"), "--site", "1", "--table", "rack"),
            1,
            f"Error: no published dataset at {read_only_publish / 'sites'} (no catalog.json)",
        ),
    }
    results = run_cases(cases, tmp_path, clean_env(tmp_path))
    for name, case in cases.items():
        assert_one_line(results[name], case.code, case.message)
    assert "Read-only file system; the target must be a writable directory" in (
        results["read-only"].stderr
    )
    assert not (tmp_path / "nothing").exists()


def test_a_run_on_a_read_only_target_fails_in_one_error_line(
    read_only_publish: Path, tmp_path: Path
) -> None:
    from exporter.demo import write_sqlite

    write_sqlite(tmp_path / "demo-data", days=1, interval_s=3600)
    result = ess_export(
        "run", "--target", str(read_only_publish), env=clean_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("Error:")] == lines[-1:]
    assert lines[-1].startswith("Error: cannot ")
    assert lines[-1].endswith(": Read-only file system; the target must be a writable directory")
    assert "Traceback" not in result.stderr


# --- the command line -----------------------------------------------------------------------


USAGE = {
    "unknown-site": (("run", "--site", "3"), "Error: unknown --site '3'; configured sites: 1, 2"),
    "unknown-option": (("run", "--bogus"), "Error: No such option '--bogus'."),
    "unknown-root-option": (("--bogus",), "Error: No such option '--bogus'."),
    "unknown-command": (("nocmd",), "Error: No such command 'nocmd'."),
    "missing-option": (("query", "public", "--site", "1"), "Error: Missing option '--table'."),
    "missing-argument": (("sql", "public"), "Error: Missing argument 'STATEMENT'."),
    "bad-date": (
        ("plan", "--since", "x"),
        "Error: Invalid value for '--since': 'x' is not a date; use YYYY-MM-DD",
    ),
    "bad-choice": (("sql", "public", "SELECT 1", "--format", "xml"), "Error: Invalid value"),
    "missing-config": (
        ("plan", "--config", "nope.toml"),
        "Error: config file nope.toml not found; pass --config FILE",
    ),
}


def test_usage_errors_are_one_error_line_and_help_keeps_the_usage(tmp_path: Path) -> None:
    cases = {name: Case(args, 2, message) for name, (args, message) in USAGE.items()}
    cases["help"] = Case(("run", "--help"), 0, "")
    results = run_cases(cases, tmp_path, clean_env(tmp_path))
    for name, case in cases.items():
        if name != "help":
            assert_one_line(results[name], case.code, case.message)
            assert results[name].stderr == case.message + "\n" or name == "bad-choice"
    assert results["help"].returncode == 0
    assert results["help"].stdout.startswith("Usage: python -m exporter run [OPTIONS]\n")


# --- DSNs: the part at fault, and passwords only from the environment ---------------------


def config_with(dsn: str) -> str:
    return f'[sites.1]\ndsn = "{dsn}"\n[sites.1.tables.rack]\n'


LITERAL = (
    "holds a literal password (in the URL, a password= parameter or a ${VAR:-default}); "
    'put the DSN in an environment variable and write dsn = "${ESS1_DSN}"'
)
EXPECTED = "expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME or sqlite:PATH"
DSN_CASES = {
    # (dsn written in the file, ESS1_DSN in the environment, message)
    "port-out-of-range": (
        "${ESS1_DSN}",
        f"postgresql://reader:{CANARY}@db.example:99999/ess1",
        f"sites.1.dsn: malformed DSN: port '99999' is not a number from 1 to 65535; {EXPECTED}",
    ),
    "port-not-a-number": (
        "${ESS1_DSN}",
        f"postgresql://reader:{CANARY}@db.example:pg/ess1",
        f"sites.1.dsn: malformed DSN: port 'pg' is not a number from 1 to 65535; {EXPECTED}",
    ),
    "port-zero": (
        "${ESS1_DSN}",
        f"postgresql://reader:{CANARY}@db.example:0/ess1",
        f"sites.1.dsn: malformed DSN: port '0' is not a number from 1 to 65535; {EXPECTED}",
    ),
    "no-host": (
        "${ESS1_DSN}",
        f"postgresql://reader:{CANARY}@/ess1",
        f"sites.1.dsn: malformed DSN: the host is missing; {EXPECTED}",
    ),
    "no-database": (
        "${ESS1_DSN}",
        f"postgresql://reader:{CANARY}@db.example:5432",
        f"sites.1.dsn: malformed DSN: the database name is missing; {EXPECTED}",
    ),
    "scheme": (
        "${ESS1_DSN}",
        f"mysql://reader:{CANARY}@db.example/ess1",
        f"sites.1.dsn: unsupported DSN scheme 'mysql'; {EXPECTED}",
    ),
    "bad-ipv6": (
        "${ESS1_DSN}",
        f"postgresql://reader:{CANARY}@[::1/ess1",
        f"sites.1.dsn: malformed DSN (Invalid IPv6 URL); {EXPECTED}",
    ),
    "password-in-userinfo": (
        f"postgresql://reader:{CANARY}@db.example/ess1",
        "",
        f"sites.1.dsn: {LITERAL}",
    ),
    "password-parameter": (
        f"postgresql://reader@db.example/ess1?sslmode=require&password={CANARY}",
        "",
        f"sites.1.dsn: {LITERAL}",
    ),
    "sslpassword-parameter": (
        f"postgresql://reader@db.example/ess1?sslpassword={CANARY}",
        "",
        f"sites.1.dsn: {LITERAL}",
    ),
    "password-before-an-empty-default": (
        f"postgresql://reader:{CANARY}${{NOPE:-}}@db.example/ess1",
        "",
        f"sites.1.dsn: {LITERAL}",
    ),
    "password-in-a-default": (
        f"${{ESS1_DSN:-postgresql://reader:{CANARY}@db.example/ess1}}",
        "postgresql://reader@db.example/ess1",
        f"sites.1.dsn: {LITERAL}",
    ),
    "password-parameter-in-a-default": (
        f"postgresql://reader@db.example/ess1${{OPTS:-?password={CANARY}}}",
        "",
        f"sites.1.dsn: {LITERAL}",
    ),
}


@pytest.mark.parametrize(("written", "from_env", "message"), DSN_CASES.values(), ids=DSN_CASES)
def test_dsn_errors_name_the_part_and_never_the_password(
    written: str, from_env: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process (click's runner): the same command, without a Python start-up per case.
    from click.testing import CliRunner

    from exporter.cli import main

    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text(config_with(written))
    env = {"ESS1_DSN": from_env or None, "OPTS": None, "NOPE": None}
    result = CliRunner().invoke(main, ["plan", "--config", "c.toml"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: c.toml: {message}\n"
    assert CANARY not in result.output


@pytest.mark.parametrize(
    ("written", "env"),
    [
        pytest.param("${ESS1_DSN}", f"postgresql://reader:{CANARY}@127.0.0.1:1/ess1", id="whole"),
        pytest.param("postgresql://reader:${PW}@127.0.0.1:1/ess1", CANARY, id="userinfo"),
        pytest.param("postgresql://reader@127.0.0.1:1/ess1?password=${PW}", CANARY, id="param"),
    ],
)
def test_a_password_from_the_environment_is_accepted_and_kept_out_of_messages(
    written: str, env: str, tmp_path: Path
) -> None:
    (tmp_path / "c.toml").write_text(config_with(written))
    variables = {"ESS1_DSN": env} if written == "${ESS1_DSN}" else {"PW": env}
    result = ess_export(
        "run", "--config", "c.toml", env={**clean_env(tmp_path), **variables}, cwd=tmp_path
    )
    assert_one_line(result, 1, "Error: site 1: cannot connect to PostgreSQL")


@pytest.mark.parametrize(
    ("dsn", "secrets", "redacted"),
    [
        pytest.param(
            "postgresql://u:s3cr%40t@h:5432/db",
            ("s3cr%40t", "s3cr@t"),
            "postgresql://u:***@h:5432/db",
            id="userinfo-percent-encoded",
        ),
        pytest.param(
            "postgresql://u@h/db?sslmode=require&password=pw1&sslpassword=pw22",
            ("pw22", "pw1"),
            "postgresql://u@h/db?sslmode=require&password=***&sslpassword=***",
            id="parameters",
        ),
        pytest.param(
            "postgresql://u:pw3@h:99999/db?PASSWORD=pw4",
            ("pw3", "pw4"),
            "postgresql://u:***@h:99999/db?PASSWORD=***",
            id="malformed-port-still-masked",
        ),
        pytest.param("sqlite:/data/ess1.sqlite", (), "sqlite:/data/ess1.sqlite", id="sqlite"),
        pytest.param("postgresql://u@h/db", (), "postgresql://u@h/db", id="no-password"),
    ],
)
def test_every_password_of_a_dsn_is_masked(
    dsn: str, secrets: tuple[str, ...], redacted: str
) -> None:
    assert dsn_secrets(dsn) == secrets
    assert redact(dsn) == redacted
    for secret in secrets:
        assert mask(f"server said: bad password {secret}.", dsn) == "server said: bad password ***."


def test_error_messages_are_masked_whichever_module_wrote_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI masks the loaded DSNs' passwords in any error, not only where a module did."""
    from click.testing import CliRunner

    from exporter import cli, pipeline
    from exporter.errors import SourceError

    def leaky_run(config: object, **_: object) -> None:
        raise SourceError(f"driver said: password {CANARY} rejected")

    # A stand-in for a driver that echoes the password: none of ours does on purpose.
    monkeypatch.setattr(pipeline, "run", leaky_run)
    (tmp_path / "c.toml").write_text(config_with("postgresql://u@h/db?password=${PW}"))
    result = CliRunner().invoke(
        cli.main, ["run", "--config", str(tmp_path / "c.toml")], env={"PW": CANARY}
    )
    assert result.exit_code == 1
    assert result.output == "Error: driver said: password *** rejected\n"
