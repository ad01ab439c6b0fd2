"""`shipyard up`: the quickstart. The example agents as a git repository, served locally.

It makes a bare repository out of the example agents (a `main` branch and a feature
branch that changes one agent) plus a working clone of it, serves the bare one on the
local target and prints the production and preview URLs and the exact commands that
take a change from the clone to a preview and on to production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from controller.cli import quickstart_repository, serve_command
from controller.reconciler.controller import Controller

# What the printed next steps append to the support bot's prompt.
EXAMPLE_CHANGE = "Always answer in French."


@click.command()
@click.option(
    "--example",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Agents repository to start from. [default: the example shipped with Shipyard]",
)
@serve_command.serve_options
def up(example: Path | None, **values: Any) -> None:
    """Serve the example agents with a production and a preview environment.

    \b
    Examples:
      shipyard up
      shipyard up --port 9000
    """
    options = serve_command.gather(**values)
    state_dir = (options.state_dir or Path(".shipyard") / "quickstart").resolve()
    repositories = quickstart_repository.prepare(state_dir, example)
    quick = serve_command.ServeOptions(
        **{
            **options.__dict__,
            "state_dir": state_dir / "controller",
            "poll_interval": min(options.poll_interval, 2.0),
        }
    )
    config = serve_command.build_config(str(repositories.served), quick)
    click.echo(
        f"Shipyard: serving {repositories.served} on http://{options.host}:{options.port}/ …"
    )
    serve_command.run(
        config, quick, on_ready=lambda controller: _banner(controller, repositories, options)
    )


async def _banner(
    controller: Controller,
    repositories: quickstart_repository.Repositories,
    options: serve_command.ServeOptions,
) -> None:
    lines = []
    for environment in controller.environments():
        lines.append(f"\n{environment['name']} (branch {environment['branch']}):")
        for agent in environment["agents"]:
            state = "ready" if agent["ready"] else agent["state"].lower()
            lines.append(f"  {agent['url'] or '-':<72} {agent['version'] or '-':<10} {state}")
    click.echo("".join(line + "\n" for line in lines))
    click.echo(f"Try:   curl {_first_url(controller)}\n")
    click.echo("\n".join(next_steps(repositories.clone, options.port)) + "\n")


def next_steps(clone: Path, port: int) -> list[str]:
    """Commands to paste into a second terminal, each runnable exactly as printed."""
    server = "" if port == 8080 else f" --server http://127.0.0.1:{port}"
    return [
        "Next, in another terminal (Ctrl-C here stops everything):",
        f"  cd {clone}",
        "  git switch -c my-change",
        f"  echo '{EXAMPLE_CHANGE}' >> agents/prompts/support-bot.md",
        "  git commit -am 'Answer in French'",
        "  git push -u origin my-change",
        f"  shipyard get previews{server}        # preview-my-change appears within seconds",
        "  git switch main && git merge --quiet my-change && git push origin main",
        f"  shipyard get agents{server}          # production runs the change; the preview is gone",
    ]


def _first_url(controller: Controller) -> str:
    for environment in controller.environments():
        for agent in environment["agents"]:
            if agent["url"]:
                return str(agent["url"])
    return "(no agent is serving yet)"
