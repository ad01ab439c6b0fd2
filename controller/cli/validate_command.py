"""`shipyard validate`: check manifests the way the controller will, before they are pushed."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import click

from controller.cli import validate_suites
from controller.specs import loading, semantic, validation
from controller.specs import tree as trees
from controller.specs.model import Agent
from controller.specs.problems import Problem

# From this many files on, they are checked in a pool of processes, one per core: below
# it, starting the pool costs more than it saves.
PARALLEL_FROM_FILES = 200
# Chunks per worker: enough to even out uneven files, few enough to keep the overhead low.
CHUNKS_PER_WORKER = 8


@dataclass(frozen=True)
class CheckedAgent:
    """What `validate` reports about a valid agent; small, so it crosses processes cheaply."""

    name: str
    version: str
    file: str
    line: int


FileResult = loading.FileResult[CheckedAgent]


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
@click.option(
    "--target",
    type=click.Choice(semantic.TARGETS),
    help="Also check what this target needs (kubernetes: spec.image, and requests a "
    "preview namespace admits), as the controller running on it does.",
)
def validate(
    paths: tuple[Path, ...], output: str, root: str, repo_root: Path | None, target: str | None
) -> None:
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
      shipyard validate --target kubernetes
    """
    requests = _group_by_repository(paths or (Path(),), root, repo_root)
    suite_requests = validate_suites.split_suite_files(requests)
    agents: list[tuple[Path, CheckedAgent]] = []
    problems: list[tuple[Path, Problem]] = []
    file_count = 0
    suite_count = 0
    for repository, (checked, found, files) in _check(requests, root, target).items():
        agents += [(repository, agent) for agent in checked]
        problems += [(repository, problem) for problem in found]
        file_count += files
        if repository in suite_requests:
            # The whole repository was checked: its agents are all here to name.
            names = {agent.name for agent in checked} if requests[repository] is None else None
            suites = validate_suites.check(repository, suite_requests[repository], names, root)
            problems += [(repository, problem) for problem in suites.problems]
            file_count += suites.files
            suite_count += len(suites.suites)
    if file_count == 0:
        where = ", ".join(str(path) for path in paths) or "."
        raise click.ClickException(f"no manifests (*.yaml, *.yml) found in {where}")
    # By file, then line: the order an editor's problem list and a reviewer read in.
    problems.sort(key=lambda found: (str(found[0]), found[1].file, found[1].line, found[1].column))
    if output == "json":
        _print_json(agents, problems, file_count)
    else:
        _print_text(agents, problems, file_count, suite_count)
    if problems:
        raise SystemExit(1)


Outcome = tuple[list[CheckedAgent], list[Problem], int]


def _check(
    requests: dict[Path, list[str] | None], root: str, target: str | None
) -> dict[Path, Outcome]:
    """Each repository's agents, problems and file count, as `loading.collect` finds them.

    Files are checked one by one (the per-file step), in a process pool when there are
    many; then each repository's results, in file order, go through the cross-file step
    once, so names are compared across all its files whichever process read them.
    """
    outcomes: dict[Path, Outcome] = {}
    work: list[tuple[Path, list[str]]] = []
    for repository, files in requests.items():
        try:
            listed = loading.manifest_files(trees.FilesystemTree(repository), root, files)
        except (trees.TreeError, OSError) as error:
            result = loading.unlisted(root, error)
            outcomes[repository] = ([], list(result.problems), result.files)
            continue
        outcomes[repository] = ([], [], 0)  # keeps the repositories in the order asked
        work.append((repository, listed))
    for repository, results in _check_files(work, target).items():
        outcomes[repository] = loading.unique(results)
    return outcomes


def _check_files(
    work: list[tuple[Path, list[str]]], target: str | None
) -> dict[Path, list[FileResult]]:
    """Every listed file's result, grouped by repository and in the order listed."""
    workers = _workers(sum(len(files) for _, files in work))
    chunks = _chunks(work, workers)
    results: dict[Path, list[FileResult]] = {repository: [] for repository, _ in work}
    checked_chunks = _map_chunks(chunks, workers, target)
    for (repository, _), checked in zip(chunks, checked_chunks, strict=True):
        results[repository] += checked
    return results


def _workers(file_count: int) -> int:
    if file_count < PARALLEL_FROM_FILES:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def _chunks(work: list[tuple[Path, list[str]]], workers: int) -> list[tuple[Path, list[str]]]:
    """The files in runs of about equal size, in order; a run never spans two repositories."""
    if workers == 1:
        return work
    total = sum(len(files) for _, files in work)
    size = max(1, math.ceil(total / (workers * CHUNKS_PER_WORKER)))
    return [
        (repository, files[start : start + size])
        for repository, files in work
        for start in range(0, len(files), size)
    ]


def _map_chunks(
    chunks: list[tuple[Path, list[str]]], workers: int, target: str | None
) -> list[list[FileResult]]:
    """`_check_chunk` over the chunks, in order: in a process pool when there are workers."""
    if workers > 1 and len(chunks) > 1:
        validation.prepare()  # compile the schema once, here, for every forked worker
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                targets = [target] * len(chunks)
                return list(pool.map(_check_chunk, *zip(*chunks, strict=True), targets))
        except (BrokenProcessPool, OSError):
            pass  # no processes to be had (a sandbox, a limit): do the same work here
    return [_check_chunk(repository, files, target) for repository, files in chunks]


def _check_chunk(repository: Path, files: list[str], target: str | None) -> list[FileResult]:
    """The per-file step for some files of one repository; runs in a worker process."""
    tree = trees.FilesystemTree(repository)
    return [_summary(loading.load_file(tree, path, target)) for path in files]


def _summary(result: loading.FileResult[Agent]) -> FileResult:
    agents = tuple(
        CheckedAgent(agent.name, agent.version, agent.file, agent.line) for agent in result.agents
    )
    return loading.FileResult(result.path, agents, result.problems)


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
        if absolute.is_dir() and repo_root is None and not (repository / root).is_dir():
            _refuse_unless_empty(path, repository, root)
        if repository not in absolute.parents and repository != absolute:
            raise click.BadParameter(
                f"{str(path)!r} is outside the repository root {str(repository)!r}",
                param_hint="PATH",
            )
        relative = absolute.relative_to(repository).as_posix() if absolute != repository else "."
        tree = trees.FilesystemTree(repository)
        files = tree.manifest_paths(relative) if absolute.is_dir() else [relative]
        if requests.get(repository, []) is not None:
            known = requests.get(repository) or []
            requests[repository] = [*known, *(name for name in files if name not in known)]
    return requests


def _refuse_unless_empty(path: Path, repository: Path, root: str) -> None:
    """A directory outside any agents repository: its YAML is someone else's, so say so."""
    if not trees.FilesystemTree(path.resolve()).manifest_paths("."):
        return  # nothing to misreport; "no manifests found" says it better
    raise click.ClickException(
        f"{str(path)!r} is not in an agents repository: {repository} has no {root}/ "
        f"directory. Run validate at the root of one, name the manifest files, or give "
        f"--root DIR (or --repo-root DIR) to say where the manifests are"
    )


def _enclosing_repository(path: Path, root: str) -> Path:
    """The nearest ancestor holding the manifests directory or a `.git`, else the cwd."""
    for candidate in path.parents:
        if (candidate / root).is_dir() or (candidate / ".git").exists():
            return candidate
    return Path.cwd()


def _print_text(
    agents: list[tuple[Path, CheckedAgent]],
    problems: list[tuple[Path, Problem]],
    file_count: int,
    suite_count: int = 0,
) -> None:
    for _, problem in problems:
        # Repository-relative, as the messages themselves name prompt files.
        click.echo(problem.render())
    files = _plural(file_count, "file")
    valid = _plural(len(agents), "agent")
    if suite_count:
        valid += f" and {_plural(suite_count, 'eval suite')}"
    if problems:
        bad_files = len({(repository, problem.file) for repository, problem in problems})
        click.echo(f"{_plural(len(problems), 'problem')} in {bad_files} of {files}; {valid} valid")
    else:
        click.echo(f"{valid} in {files}: all valid")


def _print_json(
    agents: list[tuple[Path, CheckedAgent]], problems: list[tuple[Path, Problem]], file_count: int
) -> None:
    document = {
        "valid": not problems,
        "files": file_count,
        "agents": [
            {
                "name": agent.name,
                "version": agent.version,
                "file": agent.file,
                "line": agent.line,
            }
            for repository, agent in agents
        ],
        "problems": [problem.as_dict() for _, problem in problems],
    }
    click.echo(json.dumps(document, indent=2))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
