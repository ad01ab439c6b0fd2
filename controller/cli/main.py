"""Entry point of the `shipyard` and `kubectl-shipyard` executables.

Errors Shipyard understands become one line on stderr and exit code 1; click turns
usage errors into exit code 2. No command ends in a traceback on bad input.

Commands are imported only when invoked: `shipyard get` should not pay for loading
the web server that `shipyard serve` needs.
"""

from __future__ import annotations

import importlib
import sys

import click

from controller.errors import ShipyardError

# name → "module:attribute", in the order `--help` lists them.
COMMANDS = {
    "get": "controller.cli.get_command:get",
    "describe": "controller.cli.describe_command:describe",
    "rollout": "controller.cli.rollout_command:rollout",
    "diff": "controller.cli.diff_command:diff",
    "render": "controller.cli.render_command:render",
    "logs": "controller.cli.logs_command:logs",
    "requests": "controller.cli.requests_command:requests",
    "replay": "controller.cli.replay_command:replay",
    "eval": "controller.cli.eval_command:eval_results",
    "validate": "controller.cli.validate_command:validate",
    "schema": "controller.cli.schema_command:schema",
    "serve": "controller.cli.serve_command:serve",
    "up": "controller.cli.up_command:up",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shipyard", prog_name="shipyard")
def cli() -> None:
    """Shipyard: git-native deployments and preview environments for AI agents."""


def main() -> None:
    try:
        cli.main(prog_name=_program_name(), standalone_mode=True)
    except ShipyardError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _program_name() -> str:
    invoked = sys.argv[0].rsplit("/", 1)[-1]
    return "kubectl shipyard" if invoked == "kubectl-shipyard" else "shipyard"
