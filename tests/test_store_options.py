"""The commands that read a publish reach an s3:// target with the config's [export.s3]."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from exporter.cli import main

CONFIG = """
[export.s3]
endpoint_url = "{endpoint}"
region = "us-east-1"
path_style = true
max_attempts = 1
[sites.1]
dsn = "sqlite:unused.sqlite"
[sites.1.tables.rack]
"""
# boto3 would go here without the config's endpoint: a closed loopback port.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def s3_root(
    s3_endpoint: str, demo_published: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[str, Path]:
    """The demo publish in a fresh bucket, and a config that names the endpoint."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="store-options")
    for path in sorted(demo_published.rglob("*")):
        if path.is_file():
            key = f"ess/{path.relative_to(demo_published).as_posix()}"
            client.put_object(Bucket="store-options", Key=key, Body=path.read_bytes())
    for name, value in {
        "AWS_ENDPOINT_URL": NOWHERE,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "store.toml"
    config.write_text(CONFIG.format(endpoint=s3_endpoint))
    return "s3://store-options/ess", config


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_without_the_config_the_environment_decides(s3_root: tuple[str, Path]) -> None:
    uri, _ = s3_root
    code, out, err = invoke("verify", "--target", uri)
    assert (code, out) == (1, "")
    assert err.startswith("Error: s3://store-options/ess/catalog.json: cannot connect to ")
    assert NOWHERE in err and len(err.splitlines()) == 1


def test_verify_site_query_and_sql_take_the_config_store_options(
    s3_root: tuple[str, Path], tmp_path: Path
) -> None:
    uri, config = s3_root
    code, out, err = invoke("verify", "--target", uri, "--config", str(config))
    assert (code, err) == (0, "") and out.endswith(": 0 problem(s)\n"), out

    code, out, err = invoke("site", "--target", uri, "--config", str(config))
    assert (code, err) == (0, "") and out.startswith("wrote "), out

    cache = str(tmp_path / "cache")
    question = ["--site", "1", "--table", "rack", "--page-size", "2", "--cache-dir", cache]
    code, out, err = invoke("query", uri, *question, "--config", str(config))
    assert (code, err) == (0, ""), err
    assert len(json.loads(out)["results"]) == 2

    statement = "SELECT count(*) AS n FROM rack_1"
    args = ["sql", uri, statement, "--format", "json", "--cache-dir", cache]
    code, out, err = invoke(*args, "--config", str(config))
    assert (code, err) == (0, ""), err
    assert json.loads(out)["results"][0]["n"] > 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_api_takes_the_config_store_options_in_every_worker(
    s3_root: tuple[str, Path], tmp_path: Path, workers: str
) -> None:
    from tests.support.api_server import ApiServer, get

    uri, config = s3_root
    cache = str(tmp_path / f"cache-{workers}")
    given = ["--config", str(config), "--cache-dir", cache, "--workers", workers]
    with ApiServer(uri, *given) as server:
        # Several requests, so that with two workers both are likely to answer one.
        for _ in range(6):
            status, body = get(server.port, "/api/ess/operating-sites/1/pcs/?page_size=2")
            assert status == 200, body
            assert len(json.loads(body)["results"]) == 2
