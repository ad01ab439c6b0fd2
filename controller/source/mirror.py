"""A bare mirror of the agents repository, kept fresh by incremental fetches.

Everything downstream (loading manifests, deciding what each branch runs, running agent
processes from an exact commit) reads this mirror, never the remote. A poll costs one
ref advertisement from the remote and one `for-each-ref` locally, and while the remote is
unreachable the last fetched state keeps serving.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import git

from controller.source import blob_store, commit_tree, credentials, errors, listing, spare_trees

# Re-exported so callers catch them without importing a second module.
SourceUnavailable = errors.SourceUnavailable
UnknownCommit = errors.UnknownCommit

FETCH_TIMEOUT_SECONDS = 60
# Beside the exports: the files every export links to (see `blob_store`).
BLOB_STORE = ".blobs"

_HEADS = "refs/heads/"
# Branches only: a mirror clone would also copy every `refs/pull/*` GitHub advertises.
# `+` takes force-pushes; with `--prune` deleted branches go too.
_REFSPEC = "+refs/heads/*:refs/heads/*"
_OBJECT_NAME = re.compile(r"[0-9a-f]{4,64}")
# `git archive` honours attributes found in the archived tree (export-ignore,
# export-subst, eol and filter conversions); `info/attributes` outranks them, and agents
# must run from the bytes that were committed, the same bytes `CommitTree` reads.
_VERBATIM = "* -text -eol -ident -filter -export-ignore -export-subst -working-tree-encoding\n"


@dataclass(frozen=True)
class Commit:
    """What a revision records about the commit it was deployed from."""

    sha: str
    author: str
    email: str
    message: str  # the summary line
    time: datetime  # commit (not author) time, UTC: when it landed, even after a rebase


@dataclass(frozen=True)
class _Advertised:
    head: str | None  # the branch the remote's HEAD points at, when it says
    branches: dict[str, str]


class Mirror:
    """A bare repository at `path` mirroring the branches of `url` (a URL or a local path).

    Safe to share between threads: each thread gets its own gitpython `Repo` (they are
    not thread-safe), and fetches are serialized.
    """

    def __init__(self, url: str, path: Path) -> None:
        self.url = url
        self._remote = credentials.split(url)
        self.path = path
        self._fetching = threading.Lock()
        self._local = threading.local()
        self._opened: list[git.Repo] = []
        self._opened_lock = threading.Lock()
        self._listings = listing.Listings()
        self._spares = spare_trees.SpareTrees(self._repo, BLOB_STORE)

    def __repr__(self) -> str:
        return f"Mirror({errors.redact(self.url)!r}, {str(self.path)!r})"

    def fetch(self) -> None:
        """Bring the mirror up to date; `SourceUnavailable` if the remote cannot be read."""
        with self._fetching:
            repo = self._repo()
            if repo is None:
                self._clone()
            else:
                self._configure(repo)
                self._sync(repo)

    def exists(self) -> bool:
        """Whether a fetch ever succeeded, so there is a last known state to serve."""
        return self._repo() is not None

    def branches(self) -> dict[str, str]:
        """Branch name → head commit sha, as of the last successful fetch."""
        repo = self._repo()
        return {} if repo is None else _local_branches(repo)

    def branch_times(self) -> dict[str, float]:
        """Branch name → its head's committer time (Unix seconds), in one git call."""
        repo = self._repo()
        if repo is None:
            return {}
        listing = repo.git.for_each_ref("--format=%(committerdate:unix) %(refname)", _HEADS)
        times: dict[str, float] = {}
        for line in listing.splitlines():
            stamp, _, ref = line.partition(" ")
            times[ref.removeprefix(_HEADS)] = float(stamp or 0)
        return times

    def default_branch(self) -> str | None:
        """The branch the remote's HEAD points at; None if unknown or not fetched."""
        repo = self._repo()
        if repo is None:
            return None
        try:
            ref = repo.git.rev_parse("--symbolic-full-name", "--verify", "--quiet", "HEAD")
        except git.GitCommandError:
            return None  # HEAD names a branch the remote does not have (or has no HEAD)
        return ref.removeprefix(_HEADS) if ref.startswith(_HEADS) else None

    def commit(self, sha: str) -> Commit:
        found = self._commit(sha)
        summary = found.summary
        if isinstance(summary, bytes):
            summary = summary.decode("utf-8", "replace")
        return Commit(
            sha=found.hexsha,
            author=found.author.name or "",
            email=found.author.email or "",
            message=summary,
            time=datetime.fromtimestamp(found.committed_date, tz=UTC),
        )

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant` contains `ancestor` (a commit contains itself)."""
        older, newer = self._commit(ancestor), self._commit(descendant)
        return older.repo.is_ancestor(older, newer)

    def merge_base(self, one: str, other: str) -> str | None:
        """The newest commit both contain (what a pull request compares with), or None."""
        first, second = self._commit(one), self._commit(other)
        bases = first.repo.merge_base(first, second)
        return str(bases[0].hexsha) if bases else None

    def branches_contained_in(self, sha: str) -> set[str]:
        """Branches whose head `sha` contains, in one git call however many branches exist."""
        repo = self._repo()
        if repo is None:
            return set()
        self._commit(sha)  # an unknown commit raises UnknownCommit, not a git error
        listing = repo.git.for_each_ref(f"--merged={sha}", "--format=%(refname)", _HEADS)
        return {line.removeprefix(_HEADS) for line in listing.splitlines() if line}

    def first_parent_history(self, sha: str) -> set[str]:
        """The commits on `sha`'s first-parent chain: the branch's own line of history,
        without what merges brought in."""
        repo = self._repo()
        if repo is None:
            return set()
        self._commit(sha)
        return set(repo.git.rev_list("--first-parent", sha).split())

    def tree(self, sha: str) -> commit_tree.CommitTree:
        root = self._commit(sha).tree
        return commit_tree.CommitTree(root, lambda: self._listings.get(root.repo, root.hexsha))

    def export(self, sha: str, destination: Path) -> Path:
        """The files of commit `sha`, materialized once at `destination` (read-only files)."""
        if destination.exists():
            return destination
        found = self._commit(sha)
        exports = destination.parent
        exports.mkdir(parents=True, exist_ok=True)
        files = self._listings.get(found.repo, found.tree.hexsha).files
        # Built beside the destination and renamed: a crash leaves no half-written
        # tree that a later call would take for a finished one.
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=exports))
        try:
            # From a spare copy of an earlier commit when one is ready (only what differs
            # is touched); else every file, unchanged ones as links to stored blobs.
            if not self._spares.take(exports, files, staging):
                blob_store.materialize(found.repo, files, staging, exports / BLOB_STORE)
            staging.chmod(0o755)
            try:
                staging.rename(destination)
            except OSError:
                if not destination.exists():
                    raise
                # Another export of the same commit finished first; its copy is as good.
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._spares.prepare(exports, files)  # for the next export, off its path
        return destination

    def settle(self) -> None:
        """Wait until the spare tree for the next export is built (see `spare_trees`)."""
        self._spares.settle()

    def close(self) -> None:
        """Stop the git helper processes of every thread; the mirror reopens on next use."""
        self._spares.close()
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for repo in opened:
            repo.close()
        self._local = threading.local()

    def _repo(self) -> git.Repo | None:
        repo: git.Repo | None = getattr(self._local, "repo", None)
        if repo is None:
            try:
                repo = git.Repo(self.path)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                return None
            self._local.repo = repo
            with self._opened_lock:
                self._opened.append(repo)
        return repo

    def _commit(self, sha: str) -> git.Commit:
        repo = self._repo()
        # Only object names: anything else could be a ref, a rev expression or an option.
        if repo is None or not _OBJECT_NAME.fullmatch(sha):
            raise errors.UnknownCommit(sha)
        if len(sha) in (40, 64):
            # A full id of a commit, the usual case: asked of the repository's long-lived
            # `cat-file` instead of a `rev-parse` process (several per push otherwise).
            binsha = bytes.fromhex(sha)
            with contextlib.suppress(Exception):  # anything unusual: rev-parse says
                if repo.odb.info(binsha).type == b"commit":
                    return git.Commit(repo, binsha)
        try:
            full = repo.git.rev_parse("--verify", "--quiet", f"{sha}^{{commit}}")
        except git.GitCommandError as error:
            raise errors.UnknownCommit(sha) from error
        return git.Commit(repo, bytes.fromhex(full))

    def _clone(self) -> None:
        """The first fetch, into a staging directory renamed into place once complete."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        try:
            repo = git.Repo.init(staging, bare=True)
            try:
                self._configure(repo)
                self._sync(repo)
            finally:
                repo.close()
            try:
                staging.rename(self.path)
            except OSError as error:
                reason = f"{self.path} exists and is not a git mirror ({error.strerror})"
                raise errors.SourceUnavailable(self.url, reason) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _configure(self, repo: git.Repo) -> None:
        # Through the config file, not `git remote add`: a command line carrying the URL
        # would show up in process lists and error messages. The URL is stored without
        # its credentials (see `credentials`); a mirror that still has them is rewritten.
        section = 'remote "origin"'
        reader = repo.config_reader("repository")
        current = reader.get_value(section, "url", "") if reader.has_section(section) else ""
        if current != self._remote.url:
            with repo.config_writer("repository") as config:
                config.set_value(section, "url", self._remote.url)
                config.set_value(section, "fetch", _REFSPEC)
        attributes = Path(repo.git_dir) / "info" / "attributes"
        if not attributes.is_file():
            attributes.parent.mkdir(exist_ok=True)
            attributes.write_text(_VERBATIM, encoding="utf-8")

    def _sync(self, repo: git.Repo) -> None:
        advertised = self._advertised(repo)
        # Objects arrive before refs move, so equal refs mean nothing is missing; most
        # polls end here without a second round trip.
        if advertised.branches != _local_branches(repo):
            self._git(repo, "fetch", "--prune", "--no-tags", "origin", _REFSPEC)
        if advertised.head is not None and advertised.head != _head_target(repo):
            self._git(repo, "symbolic-ref", "HEAD", advertised.head)

    def _advertised(self, repo: git.Repo) -> _Advertised:
        output = self._git(repo, "ls-remote", "--symref", "origin", "HEAD", f"{_HEADS}*")
        head: str | None = None
        branches: dict[str, str] = {}
        for line in output.splitlines():
            value, _, name = line.partition("\t")
            if value.startswith("ref: ") and name == "HEAD":
                target = value.removeprefix("ref: ")
                head = target if target.startswith(_HEADS) else None
            elif name.startswith(_HEADS):
                branches[name.removeprefix(_HEADS)] = value
        return _Advertised(head, branches)

    def _git(self, repo: git.Repo, command: str, *arguments: str) -> str:
        """Run a git command that talks to the remote; failures become `SourceUnavailable`."""
        try:
            run = getattr(repo.git, command.replace("-", "_"))
            output: str = run(
                *arguments,
                env={**_remote_environment(), **self._remote.git_environment()},
                kill_after_timeout=FETCH_TIMEOUT_SECONDS,
            )
        except git.CommandError as error:
            raise errors.SourceUnavailable(self.url, _reason(error)) from error
        return output


def _local_branches(repo: git.Repo) -> dict[str, str]:
    # One process for every branch, no object reads: a poll stays O(branches).
    listing = repo.git.for_each_ref("--format=%(objectname) %(refname)", _HEADS)
    branches: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, ref = line.partition(" ")  # ref names cannot contain spaces
        branches[ref.removeprefix(_HEADS)] = sha
    return branches


def _head_target(repo: git.Repo) -> str | None:
    try:
        target: str = repo.git.symbolic_ref("--quiet", "HEAD")
    except git.GitCommandError:
        return None
    return target


def _remote_environment() -> dict[str, str]:
    # Nobody answers a prompt in a controller: a missing credential must fail, not hang.
    environment = {"GIT_TERMINAL_PROMPT": "0"}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        environment["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return environment


def _reason(error: git.CommandError) -> str:
    """The line of git's stderr that says what went wrong."""
    # gitpython wraps stderr as "\n  stderr: '<text>'".
    text = str(error.stderr).strip().removeprefix("stderr: '").removesuffix("'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    if lines:
        return lines[0]
    return f"git exited with {error.status}"
