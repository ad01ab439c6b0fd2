"""The eval-suite half of `shipyard validate`: suites are checked beside the manifests.

A whole repository's `evals/` directory is checked, and so is any suite file named on
the command line; a suite's agent must be one the repository defines.
"""

from __future__ import annotations

from pathlib import Path

from controller.specs import evalsuites, loading
from controller.specs import tree as trees
from controller.specs.problems import Problem


def split_suite_files(requests: dict[Path, list[str] | None]) -> dict[Path, list[str] | None]:
    """Take the suite files out of `requests` (in place); per repository, which to check.

    None means the whole `evals/` directory (the repository itself was asked for).
    """
    suites: dict[Path, list[str] | None] = {}
    for repository, files in requests.items():
        if files is None:
            suites[repository] = None
            continue
        named = [path for path in files if _is_suite(path)]
        if named:
            suites[repository] = named
            requests[repository] = [path for path in files if not _is_suite(path)]
    return suites


def _is_suite(path: str) -> bool:
    return path.startswith(f"{evalsuites.DEFAULT_ROOT}/")


def check(
    repository: Path, files: list[str] | None, agents: set[str] | None, root: str
) -> evalsuites.SuiteResult:
    """Problems of the suites asked for; `agents` None: those the repository defines."""
    tree = trees.FilesystemTree(repository)
    if agents is None:
        agents = {agent.name for agent in loading.collect(tree, root).agents}
    return evalsuites.collect(tree, agents, paths=files)


def problems_of(result: evalsuites.SuiteResult) -> list[Problem]:
    return list(result.problems)
