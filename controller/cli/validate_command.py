"""`shipyard validate`: check manifests the way the controller will, before they are pushed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import click

from controller.specs import loading
from controller.specs import tree as trees
from controller.specs.model import Agent
from controller.specs.problems import Problem


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json is meant for CI.",
)
@click.option(
    "--root",
    default=loading.DEFAULT_ROOT,
    show_default=True,
    help="Directory of manifests inside a repository.",
)
@click.option(
    "--repo-root",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Repository root that prompt files are relative to. Default: the enclosing git "
    "repository, else the current directory.",
)
def validate(paths: tuple[Path, ...], output: str, root: str, repo_root: Path | None) -> None:
    """Validate agent manifests against the schema and Shipyard's own rules.

    Each PATH is a repository (a directory holding ROOT), a directory of manifests or a
    manifest file. Without PATH, the current directory. Prompt files are resolved from
    the repository root: --repo-root, else the nearest directory above PATH that holds
    ROOT or .git. Exit status: 0 when every manifest is valid, 1 when any is not, 2 for
    usage errors.

    \b
    Examples:
      shipyard validate
      shipyard validate examples/agents-repo
      shipyard validate agents/support-bot.yaml -o json
    """
    requests = _group_by_repository(paths or (Path(),), root, repo_root)
    results = [
        (repository, loading.collect(trees.FilesystemTree(repository), root, files))
        for repository, files in requests.items()
    ]
    agents = [(repository, agent) for repository, result in results for agent in result.agents]
    problems = [
        (repository, problem) for repository, result in results for problem in result.problems
    ]
    file_count = sum(result.files for _, result in results)
    if file_count == 0:
        where = ", ".join(str(path) for path in paths) or "."
        raise click.ClickException(f"no manifests (*.yaml, *.yml) found in {where}")
    if output == "json":
        _print_json(agents, problems, file_count)
    else:
        _print_text(agents, problems, file_count)
    if problems:
        raise SystemExit(1)


def _group_by_repository(
    paths: Iterable[Path], root: str, repo_root: Path | None
) -> dict[Path, list[str] | None]:
    """Repository → the manifest files asked for in it (None: everything under root)."""
    requests: dict[Path, list[str] | None] = {}
    for path in paths:
        if not path.exists():
            raise click.BadParameter(f"{str(path)!r} does not exist", param_hint="PATH")
        absolute = path.resolve()
        if absolute.is_dir() and (absolute / root).is_dir() and repo_root is None:
            requests[absolute] = None
            continue
        repository = (repo_root or _enclosing_repository(absolute, root)).resolve()
        if repository not in absolute.parents and repository != absolute:
            raise click.BadParameter(
                f"{str(path)!r} is outside the repository root {str(repository)!r}",
                param_hint="PATH",
            )
        relative = absolute.relative_to(repository).as_posix() if absolute != repository else "."
        tree = trees.FilesystemTree(repository)
        files = tree.manifest_paths(relative) if absolute.is_dir() else [relative]
        if requests.get(repository, []) is not None:
            requests[repository] = [*(requests.get(repository) or []), *files]
    return requests


def _enclosing_repository(path: Path, root: str) -> Path:
    """The nearest ancestor holding the manifests directory or a `.git`, else the cwd."""
    for candidate in path.parents:
        if (candidate / root).is_dir() or (candidate / ".git").exists():
            return candidate
    return Path.cwd()


def _shown(repository: Path, file: str) -> str:
    """A problem's file as the person typed it would find it: relative to where they are."""
    shown = os.path.relpath(repository / file)
    return str(repository / file) if shown.startswith("..") else shown


def _print_text(
    agents: list[tuple[Path, Agent]], problems: list[tuple[Path, Problem]], file_count: int
) -> None:
    for repository, problem in problems:
        located = Problem(
            _shown(repository, problem.file),
            problem.line,
            problem.column,
            problem.field,
            problem.message,
        )
        click.echo(located.render())
    files = _plural(file_count, "file")
    if problems:
        bad_files = len({(repository, problem.file) for repository, problem in problems})
        click.echo(
            f"{_plural(len(problems), 'problem')} in {bad_files} of {files}; "
            f"{_plural(len(agents), 'agent')} valid"
        )
    else:
        click.echo(f"{_plural(len(agents), 'agent')} in {files}: all valid")


def _print_json(
    agents: list[tuple[Path, Agent]], problems: list[tuple[Path, Problem]], file_count: int
) -> None:
    document = {
        "valid": not problems,
        "files": file_count,
        "agents": [
            {
                "name": agent.name,
                "version": agent.version,
                "file": _shown(repository, agent.file),
                "line": agent.line,
            }
            for repository, agent in agents
        ],
        "problems": [
            {**problem.as_dict(), "file": _shown(repository, problem.file)}
            for repository, problem in problems
        ],
    }
    click.echo(json.dumps(document, indent=2))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
