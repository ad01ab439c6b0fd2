"""The command table: every listed command loads, names and summaries match the commands.

`--help` lists commands from the table without importing them (so it stays fast); the
summaries there must say what each command's own help says.
"""

from __future__ import annotations

import subprocess
import sys

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


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_summary_is_the_commands_own_first_sentence(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    listed = click.Command(name, help=COMMANDS[name][1]).get_short_help_str(10_000)
    assert listed == command.get_short_help_str(10_000)


def test_help_lists_every_command_without_importing_any() -> None:
    # A fresh interpreter: this test process has imported the commands already.
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from controller.cli.main import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        "print(result.output)\n"
        "print(sorted(m for m in sys.modules if m.endswith('_command') or m == 'fastapi'))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in shown
    assert shown.rstrip().endswith("[]")
