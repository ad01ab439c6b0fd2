"""Entry point of the `shipyard` and `kubectl-shipyard` executables.

Errors Shipyard understands become one line on stderr and exit code 1; click turns
usage errors into exit code 2. No command ends in a traceback on bad input.
"""

from __future__ import annotations

import sys

import click

from controller.cli import commands, schema_command, serve_command, up_command, validate_command
from controller.errors import ShipyardError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shipyard", prog_name="shipyard")
def cli() -> None:
    """Shipyard: git-native deployments and preview environments for AI agents."""


cli.add_command(validate_command.validate)
cli.add_command(schema_command.schema)
cli.add_command(serve_command.serve)
cli.add_command(up_command.up)
for command in commands.ALL:
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(prog_name=_program_name(), standalone_mode=True)
    except ShipyardError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _program_name() -> str:
    invoked = sys.argv[0].rsplit("/", 1)[-1]
    return "kubectl shipyard" if invoked == "kubectl-shipyard" else "shipyard"
