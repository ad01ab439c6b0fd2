"""The command table: every listed command loads, and names match what click registers."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from controller.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_loads_under_its_name(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert command.name == name


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["deploy"])
    assert result.exit_code == 2
    assert "No such command 'deploy'" in result.stderr
