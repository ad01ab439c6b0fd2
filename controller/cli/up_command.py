"""`shipyard up`: the quickstart. The example agents as a git repository, served locally.

It makes a real repository out of `examples/agents-repo` (a `main` branch and a feature
branch that changes one agent), serves it on the local target and prints the production
and preview URLs, so `git push` → preview URL can be tried on a laptop in one command.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import click

from controller.cli import serve_command
from controller.reconciler.controller import Controller

FEATURE_BRANCH = "feature/friendlier-support"
_GIT_IDENTITY = (
    "-c",
    "user.name=Shipyard Quickstart",
    "-c",
    "user.email=quickstart@shipyard.invalid",
)


@click.command()
@click.option(
    "--example",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Agents repository to start from. [default: examples/agents-repo]",
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
    source = example or _bundled_example()
    state_dir = (options.state_dir or Path(".shipyard") / "quickstart").resolve()
    repository = state_dir / "agents-repo"
    if not (repository / ".git").exists():
        _make_repository(source, repository)
    quick = serve_command.ServeOptions(
        **{
            **options.__dict__,
            "state_dir": state_dir / "controller",
            "poll_interval": min(options.poll_interval, 2.0),
        }
    )
    config = serve_command.build_config(str(repository), quick)
    click.echo(f"Shipyard: serving {repository} on http://{options.host}:{options.port}/ …")
    serve_command.run(config, quick, on_ready=lambda controller: _banner(controller, repository))


async def _banner(controller: Controller, repository: Path) -> None:
    lines = []
    for environment in controller.environments():
        lines.append(f"\n{environment['name']} (branch {environment['branch']}):")
        for agent in environment["agents"]:
            state = "ready" if agent["ready"] else agent["state"].lower()
            lines.append(f"  {agent['url'] or '-':<72} {agent['version'] or '-':<10} {state}")
    click.echo("".join(line + "\n" for line in lines))
    click.echo(
        f"Try:   curl {_first_url(controller)}\n"
        f"Push:  cd {repository} && git checkout -b my-change && <edit> && git commit -am … \n"
        f"       (previews follow the repository's branches; Ctrl-C stops everything)"
    )


def _first_url(controller: Controller) -> str:
    for environment in controller.environments():
        for agent in environment["agents"]:
            if agent["url"]:
                return str(agent["url"])
    return "(no agent is serving yet)"


def _bundled_example() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / "examples" / "agents-repo"
        if (candidate / "agents").is_dir():
            return candidate
    raise click.UsageError("examples/agents-repo not found; pass --example PATH")


def _make_repository(source: Path, repository: Path) -> None:
    """`main` with the example agents; a feature branch with a friendlier support prompt."""
    staging = repository.with_name(repository.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    _git(staging, "init", "--quiet", "--initial-branch=main")
    _git(staging, "add", "--all")
    _git(staging, "commit", "--quiet", "-m", "Add the example agents")
    _git(staging, "checkout", "--quiet", "-b", FEATURE_BRANCH)
    prompt = staging / "agents" / "prompts" / "support-bot.md"
    if prompt.is_file():
        prompt.write_text(prompt.read_text() + "\nGreet every customer warmly by name.\n")
    _git(staging, "commit", "--quiet", "--all", "-m", "Make the support bot friendlier")
    _git(staging, "checkout", "--quiet", "main")
    staging.rename(repository)


def _git(cwd: Path, *arguments: str) -> None:
    try:
        subprocess.run(
            ["git", *_GIT_IDENTITY, *arguments], cwd=cwd, check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as error:
        raise click.ClickException(f"git {arguments[0]} failed: {error.stderr.strip()}") from error
