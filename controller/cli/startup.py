"""What `shipyard serve` says when it starts: where it listens and what it serves.

A server that prints nothing leaves its user guessing which port, which repository and
which branch it took. The repository is printed through `redact`, since a remote URL
may carry a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from controller.reconciler.controller import Controller
from controller.source import errors as source_errors

LABEL_WIDTH = 16


@dataclass(frozen=True)
class Startup:
    repo: str
    host: str
    port: int
    target: str  # "local", or "kubernetes (context …)"
    default_branch: str | None  # None: the remote's HEAD, known after the first fetch
    state_dir: Path


def lines(startup: Startup) -> list[str]:
    base = f"http://{_url_host(startup.host)}:{startup.port}"
    branch = startup.default_branch or "the repository's HEAD (known after the first fetch)"
    return [
        f"Shipyard {_version()} listening on {base}/",
        _field("API", f"{base}/api/v1 (metrics {base}/metrics, OpenAPI {base}/docs)"),
        _field("repository", source_errors.redact(startup.repo)),
        _field("target", startup.target),
        _field("default branch", branch),
        _field("state", str(startup.state_dir)),
    ]


def first_sync(controller: Controller) -> str:
    """One line once the repository was read: the branch taken and the environments."""
    names = [environment["name"] for environment in controller.environments()]
    listed = ", ".join(names) if names else "none yet"
    return (
        f"First sync done: default branch {controller.default_branch}; "
        f"environments: {listed} (shipyard get environments)"
    )


def echo(startup: Startup) -> None:
    click.echo("\n".join(lines(startup)))


async def echo_first_sync(controller: Controller) -> None:
    click.echo(first_sync(controller))


def _field(label: str, value: str) -> str:
    return f"  {label + ':':<{LABEL_WIDTH}}{value}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _version() -> str:
    try:
        return metadata.version("shipyard")
    except metadata.PackageNotFoundError:
        return "(not installed)"
