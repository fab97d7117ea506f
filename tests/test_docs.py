"""Every command documents itself with an example; the README names the two set-up commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`ess-export {command} --help` shows no example"
    assert f"ess-export {command}" in README, f"README does not mention `ess-export {command}`"


def test_readme_gives_the_two_set_up_commands() -> None:
    assert "make demo" in README and "make test" in README


# --- the README's Python blocks run, against the demo publish ------------------------------

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def demo_publish(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make demo` leaves: config/, demo-data/ (one day) and ./public."""
    from exporter import load, run
    from exporter.demo import write_sqlite

    home = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "config", home / "config", ignore=shutil.ignore_patterns("__*"))
    write_sqlite(home / "demo-data", days=1)
    config = load(home / "config" / "demo.toml", env={"ESS_DEMO_DIR": str(home / "demo-data")})
    run(config, target=str(home / "public"))
    return home


def test_the_readme_has_the_python_blocks_this_test_runs() -> None:
    blocks = python_blocks(README)
    assert [block.splitlines()[0] for block in blocks] == [
        "from exporter import Dataset",
        "import exporter",
    ]


@pytest.mark.parametrize(
    ("index", "first_lines"),
    [
        pytest.param(
            0,
            [
                "721 2 shape: (100, 2)",
                "1 ['date', 'avg(rack_soc)']",
            ],
            id="query",
        ),
        pytest.param(1, ["0 partition(s) to export"], id="api"),
    ],
)
def test_a_readme_python_block_runs(index: int, first_lines: list[str], demo_publish: Path) -> None:
    block = python_blocks(README)[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    result = subprocess.run(
        [sys.executable, "-c", block],
        cwd=demo_publish,
        env={**env, "ESS_EXPORT_CACHE": str(demo_publish / "cache")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    for expected in first_lines:
        assert expected in printed, result.stdout


# --- the public names, as httpx tests its exported members --------------------------------


def test_the_package_exports_its_public_api() -> None:
    import exporter

    assert exporter.__all__ == [
        "Config",
        "ConfigError",
        "Dataset",
        "ExportError",
        "LockHeld",
        "PublishError",
        "QueryError",
        "RunReport",
        "SourceError",
        "build_site",
        "load",
        "make_plan",
        "open_target",
        "run",
        "verify",
    ]
    for name in exporter.__all__:
        member = getattr(exporter, name)
        assert member.__module__.startswith("exporter."), name
        assert name in dir(exporter)
    for error in ("ConfigError", "SourceError", "PublishError", "LockHeld", "QueryError"):
        assert issubclass(getattr(exporter, error), exporter.ExportError)
