"""Every command documents itself with an example; the README names the two set-up commands."""

from __future__ import annotations

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
