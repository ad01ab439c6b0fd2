"""`shipyard diff`: what a branch changes in its agents, as a pull request would show.

Computed locally from git: the repository is mirrored into a temporary directory (a
local path or a URL, as `serve --repo` takes) and the manifests of the branch head and
of the base (`diff_base`: what production runs, else the merge base) are loaded exactly
as the controller loads them. Only the production commit is asked of the controller.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from controller.cli import client, diff_base, printers, repositories
from controller.source.mirror import Mirror
from controller.specs import loading, manifest_diff
from controller.specs.model import Agent
from preview import naming


@click.command(name="diff")
@click.argument("branch")
@click.option(
    "--against",
    default=naming.PRODUCTION,
    show_default=True,
    metavar="BRANCH",
    help="Compare with what production runs (asking the controller), else with the merge "
    "base of BRANCH and the default branch; a branch name: the merge base with it.",
)
@click.option(
    "--repo",
    envvar="SHIPYARD_REPO",
    show_envvar=True,
    metavar="PATH_OR_URL",
    help="The agents repository, a local path or a git URL. Default: the current directory.",
)
@click.option(
    "--root",
    default=loading.DEFAULT_ROOT,
    show_default=True,
    help="Directory of manifests inside the repository.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@client.connection_options
def diff(  # noqa: PLR0917 - click passes one argument per flag
    branch: str,
    against: str,
    repo: str | None,
    root: str,
    output: str,
    server: str | None,
    token: str | None,
) -> None:
    """Show what BRANCH changes in each agent, compared with --against.

    The base is what production runs when a controller answers (--server, as for
    `get`) and has that commit; else the merge base of BRANCH and the default branch,
    as a pull request view shows (a stale local main then changes nothing). Per agent:
    every changed field by its path (model, parameters such as temperature, resources,
    env, labels...), tools added or removed, and the prompt as a unified diff; then
    agents added or removed. Exit status 0 whether or not anything changed, 1 on errors
    (unknown branch, unreachable repository).

    \b
    Examples:
      shipyard diff feature/friendlier-support
      shipyard diff feature/x --against main --repo https://github.com/acme/agents.git
      shipyard diff feature/x -o json
    """
    location = repositories.location(repo)
    with tempfile.TemporaryDirectory(prefix="shipyard-diff-") as scratch:
        mirror = Mirror(location, Path(scratch) / "mirror")
        try:
            mirror.fetch()
            branches = mirror.branches()
            tip = repositories.head(branches, branch, location)
            base = diff_base.choose(
                mirror, branches, tip, against, location=location, connection=(server, token)
            )
            before = _load(mirror, base.commit, root, base.branch)
            after = _load(mirror, tip, root, branch)
        finally:
            mirror.close()
    changes = compare(before, after, (base.branch, branch))
    summary = {
        "branch": branch,
        "commit": tip,
        "against": base.branch,
        "againstCommit": base.commit,
        "basis": base.basis,
        "agents": [change.as_dict() for change in changes],
    }
    if output != "text":
        click.echo(printers.dumps(summary, output), nl=False)
        return
    click.echo(f"{branch} ({tip[:12]}) against {base.branch} ({base.commit[:12]}, {base.source})")
    if not changes:
        click.echo("No agent changes.")
        return
    for change in changes:
        click.echo("")
        for line in change.render():
            click.echo(line)
    counts = {kind: sum(1 for c in changes if c.change == kind) for kind in _ORDER}
    parts = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
    click.echo(f"\n{len(changes)} agent{'s' if len(changes) != 1 else ''} changed: {parts}")


_ORDER = ("modified", "added", "removed")


def compare(
    base: dict[str, Agent], head: dict[str, Agent], labels: tuple[str, str]
) -> list[manifest_diff.AgentDiff]:
    """Modified agents first, then added, then removed, each by name."""
    changes = []
    for name in sorted(base.keys() & head.keys()):
        old, new = base[name], head[name]
        if old.version == new.version:
            continue
        changes.append(
            manifest_diff.compare(
                name,
                old.manifest,
                new.manifest,
                from_version=old.version,
                to_version=new.version,
                prompts=(old.spec.prompt.text, new.spec.prompt.text),
                labels=labels,
            )
        )
    for name in sorted(head.keys() - base.keys()):
        changes.append(manifest_diff.AgentDiff(name, "added", to_version=head[name].version))
    for name in sorted(base.keys() - head.keys()):
        changes.append(manifest_diff.AgentDiff(name, "removed", from_version=base[name].version))
    return changes


def _load(mirror: Mirror, sha: str, root: str, branch: str) -> dict[str, Agent]:
    result = loading.collect(mirror.tree(sha), root)
    for problem in result.problems:
        click.echo(f"warning: {branch}: {problem.render()}", err=True)
    return {agent.name: agent for agent in result.agents}
