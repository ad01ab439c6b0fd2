"""The quickstart's git repositories: a bare one the controller serves, a clone to work in.

`git push origin main` from a clone is refused when the remote has `main` checked out,
so the repository Shipyard serves is bare and the one a person edits is a clone of it
whose `origin` is that bare repository: "commit and push" then works exactly as with a
real forge. The example agents ship inside the package (beside `controller/`), so the
quickstart works wherever Shipyard is installed, not only from a source checkout.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.errors import ShipyardError

FEATURE_BRANCH = "feature/friendlier-support"
FEATURE_MESSAGE = "Make the support bot friendlier"
DEFAULT_BRANCH = "main"
SERVED_NAME = "agents.git"
CLONE_NAME = "agents-repo"
_GIT_IDENTITY = (
    "-c",
    "user.name=Shipyard Quickstart",
    "-c",
    "user.email=quickstart@shipyard.invalid",
)


@dataclass(frozen=True)
class Repositories:
    served: Path  # bare: what `shipyard serve --repo` reads
    clone: Path  # a working clone whose `origin` is `served`


def bundled_example() -> Path:
    """The example agents repository installed with Shipyard (or in its source checkout)."""
    # The wheel installs `examples/` beside `controller/`, as the source tree has it.
    candidate = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"
    if not (candidate / "agents").is_dir():
        raise ShipyardError(
            f"the example agents are missing from this installation ({candidate}); "
            "pass --example PATH"
        )
    return candidate


def prepare(state_dir: Path, example: Path | None = None) -> Repositories:
    """The quickstart's repositories under `state_dir`, made from `example` if missing.

    Reused as they are when present, so a second `shipyard up` keeps the user's commits.
    A clone left by an older `shipyard up` (a plain repository, no `origin`) becomes the
    source of the bare repository, commits included.
    """
    repositories = Repositories(state_dir / SERVED_NAME, state_dir / CLONE_NAME)
    if (repositories.served / "HEAD").is_file() and (repositories.clone / ".git").exists():
        return repositories
    state_dir.mkdir(parents=True, exist_ok=True)
    if (repositories.clone / ".git").exists():
        _serve_existing_clone(repositories)
        return repositories
    if (repositories.served / "HEAD").is_file():
        _clone(repositories)
        return repositories
    _make(example or bundled_example(), repositories)
    return repositories


def _make(source: Path, repositories: Repositories) -> None:
    """`main` with the example agents; a feature branch with a friendlier support prompt."""
    work = repositories.clone.with_name(repositories.clone.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    _git(work, "init", "--quiet", f"--initial-branch={DEFAULT_BRANCH}")
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "-m", "Add the example agents")
    _git(work, "checkout", "--quiet", "-b", FEATURE_BRANCH)
    prompt = work / "agents" / "prompts" / "support-bot.md"
    if prompt.is_file():
        prompt.write_text(prompt.read_text() + "\nGreet every customer warmly by name.\n")
    _git(work, "commit", "--quiet", "--all", "--allow-empty", "-m", FEATURE_MESSAGE)
    _git(work, "checkout", "--quiet", DEFAULT_BRANCH)
    _make_bare(work, repositories.served)
    _git(work, "remote", "add", "origin", str(repositories.served))
    _track_origin(work)
    work.rename(repositories.clone)


def _serve_existing_clone(repositories: Repositories) -> None:
    _make_bare(repositories.clone, repositories.served)
    remotes = _git(repositories.clone, "remote").split()
    verb = "set-url" if "origin" in remotes else "add"
    _git(repositories.clone, "remote", verb, "origin", str(repositories.served))
    _track_origin(repositories.clone)


def _clone(repositories: Repositories) -> None:
    work = repositories.clone.with_name(repositories.clone.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    _git(work.parent, "clone", "--quiet", str(repositories.served), work.name)
    _track_origin(work)
    work.rename(repositories.clone)


def _make_bare(work: Path, served: Path) -> None:
    staging = served.with_name(served.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    _git(work, "init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(staging))
    _git(work, "push", "--quiet", str(staging), "refs/heads/*:refs/heads/*")
    staging.rename(served)


def _track_origin(work: Path) -> None:
    """Every branch of `origin` as a local branch tracking it, as after a push -u."""
    _git(work, "fetch", "--quiet", "origin")
    _git(work, "remote", "set-head", "origin", "--auto")
    local = set(_git(work, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    remote = _git(work, "for-each-ref", "--format=%(refname:short)", "refs/remotes/origin")
    for tracking in remote.split():
        branch = tracking.removeprefix("origin/")
        if branch == "HEAD" or tracking == "origin":
            continue
        if branch in local:
            _git(work, "branch", "--quiet", f"--set-upstream-to={tracking}", branch)
        else:
            _git(work, "branch", "--quiet", "--track", branch, tracking)


def _git(cwd: Path, *arguments: str) -> str:
    try:
        done = subprocess.run(
            ["git", *_GIT_IDENTITY, *arguments], cwd=cwd, check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as error:
        raise ShipyardError(f"git {arguments[0]} failed: {error.stderr.strip()}") from error
    except FileNotFoundError as error:
        raise ShipyardError("git is not installed; the quickstart needs it") from error
    return done.stdout
