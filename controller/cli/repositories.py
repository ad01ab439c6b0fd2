"""Which repository and which branches a local CLI command (`diff`, `render`) reads.

Shared by the commands that load manifests themselves instead of asking the API: where
the repository is, which branch is production, and a branch's head, with errors that
name what exists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from controller.errors import ShipyardError
from controller.source.mirror import Mirror
from preview import naming


def location(repo: str | None) -> str:
    """A URL as given; a local path made absolute (git resolves it from another directory)."""
    candidate = repo or "."
    path = Path(candidate).expanduser()
    if "://" not in candidate and path.exists():
        return str(path.resolve())
    if repo is None:
        raise ShipyardError("give the agents repository with --repo or SHIPYARD_REPO")
    return candidate


def resolve_against(mirror: Mirror, against: str, location: str) -> str:
    if against != naming.PRODUCTION:
        return against
    # A working clone's HEAD is whatever is checked out; what it tracks as origin's
    # default branch is what the controller deploys to production.
    default = _origin_default(location, mirror.branches()) or mirror.default_branch()
    if default is None:
        raise ShipyardError(
            f"cannot tell the default branch of {location}; name it with --against BRANCH"
        )
    return default


def _origin_default(location: str, branches: dict[str, str]) -> str | None:
    if "://" in location or not (Path(location) / ".git").exists():
        return None
    found = subprocess.run(
        ["git", "-C", location, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    name = found.stdout.strip().removeprefix("origin/")
    if found.returncode == 0 and name in branches:
        return name
    candidates = [name for name in ("main", "master") if name in branches]
    return candidates[0] if len(candidates) == 1 else None


def head(branches: dict[str, str], name: str, location: str) -> str:
    if name not in branches:
        known = ", ".join(sorted(branches)) or "none"
        raise ShipyardError(f'branch "{name}" not found in {location} (branches: {known})')
    return branches[name]
