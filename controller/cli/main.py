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

# name → ("module:attribute", summary), in the order `--help` lists them. The summaries
# are the commands' own first sentences (a test keeps them equal), so that `--help`
# lists commands without importing them: `serve` alone would cost FastAPI and uvicorn.
COMMANDS = {
    "get": (
        "controller.cli.get_command:get",
        "List environments, agents, previews, revisions or rollouts.",
    ),
    "describe": (
        "controller.cli.describe_command:describe",
        "Show one agent or one environment in detail, ending with its events.",
    ),
    "rollout": (
        "controller.cli.rollout_command:rollout",
        "Watch, inspect and steer the rollouts of an agent.",
    ),
    "diff": (
        "controller.cli.diff_command:diff",
        "Show what BRANCH changes in each agent, compared with --against.",
    ),
    "render": (
        "controller.cli.render_command:render",
        "Print the Kubernetes objects of a branch's environment, as Shipyard applies them.",
    ),
    "logs": (
        "controller.cli.logs_command:logs",
        "Print an agent's output: its process output on the local target, pod logs on Kubernetes.",
    ),
    "requests": (
        "controller.cli.requests_command:requests",
        "List the newest requests the router passed to an agent, with their trace ids.",
    ),
    "replay": (
        "controller.cli.replay_command:replay",
        "Replay recorded requests of AGENT against another environment and compare answers.",
    ),
    "eval": (
        "controller.cli.eval_command:eval_results",
        "Print the eval results of AGENT's version in the environment.",
    ),
    "validate": (
        "controller.cli.validate_command:validate",
        "Validate agent manifests against the schema and Shipyard's own rules.",
    ),
    "schema": (
        "controller.cli.schema_command:schema",
        "Print the JSON Schema of agent manifests (shipyard.dev/v1alpha1).",
    ),
    "serve": (
        "controller.cli.serve_command:serve",
        "Run the controller: previews for every branch, production from the default branch.",
    ),
    "gateway": (
        "controller.cli.gateway_command:gateway_command",
        "Route agent hosts to their versions' ready pods, splitting canaries by weight.",
    ),
    "up": (
        "controller.cli.up_command:up",
        "Serve the example agents with a production and a preview environment.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute = entry[0].split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's own listing, from the summaries above instead of imported commands."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))
            for name, (_, summary) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
