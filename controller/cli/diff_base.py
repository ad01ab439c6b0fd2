"""Which commit `shipyard diff` compares a branch with.

A local `main` may be stale, and a branch head compared with a newer `main` shows the
newer commits as if the branch reverted them. So the base is what production runs, when
a controller answers and its production commit is in the repository; otherwise the merge
base of the branch and the branch it is compared with, as a pull request view shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from controller.cli import client, repositories
from controller.errors import ShipyardError
from controller.source.mirror import Mirror
from preview import naming

PRODUCTION_BASIS = "production"
MERGE_BASE_BASIS = "merge-base"


@dataclass(frozen=True)
class Base:
    branch: str  # the branch compared with
    commit: str
    basis: str  # PRODUCTION_BASIS or MERGE_BASE_BASIS
    source: str  # for people: "what production runs at URL", "the merge base"


def choose(
    mirror: Mirror,
    branches: dict[str, str],
    head: str,
    against: str,
    *,
    location: str,
    connection: tuple[str | None, str | None],
) -> Base:
    """The base for `head` (a commit); `against` is a branch or `production`."""
    if against == naming.PRODUCTION:
        running = _production(mirror, connection)
        if running is not None:
            return running
    name = repositories.resolve_against(mirror, against, location)
    tip = repositories.head(branches, name, location)
    fork = mirror.merge_base(head, tip)
    if fork is None:  # unrelated histories: nothing is shared, compare the heads
        return Base(name, tip, MERGE_BASE_BASIS, f"the head of {name} (no common history)")
    return Base(name, fork, MERGE_BASE_BASIS, f"the merge base with {name}")


def _production(mirror: Mirror, connection: tuple[str | None, str | None]) -> Base | None:
    server, token = connection
    explicit = server is not None or client.settings(None, None).server != client.DEFAULT_SERVER
    try:
        with client.Client(server, token) as api:
            environment = api.environment(naming.PRODUCTION)
            where = api.server
    except ShipyardError as error:
        if explicit:  # a controller the user named should answer; say why it did not
            click.echo(f"warning: {error}; comparing with the merge base", err=True)
        return None
    commit, branch = environment.get("commit"), environment.get("branch")
    if not commit or not branch:
        return None
    try:
        mirror.commit(commit)
    except ShipyardError:
        click.echo(
            f"warning: production at {where} runs commit {commit[:12]}, which this "
            "repository does not have; comparing with the merge base",
            err=True,
        )
        return None
    return Base(branch, commit, PRODUCTION_BASIS, f"what production runs at {where}")
