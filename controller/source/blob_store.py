"""Materializes a commit's files as hard links into a store of blobs, one file per content.

Local agents run from a directory holding their commit's files. Extracting the whole
commit for every push (git archive + tar) cost 231-346 ms at 1,000 agents, most of a
one-agent change. Here every blob is written once, into a content-addressed store beside
the exports, read-only; a commit's directory is then its tree of hard links into that
store. A push that changes one file writes one file; the rest are links (one syscall
each, no data copied).

Directories a running agent uses are never changed: every export is a new directory,
and store files are only ever created, never rewritten. Files are read-only because
their inodes are shared between commits, so an agent that tried to rewrite a committed
file in place would otherwise change it for every commit that holds it. Symlinks are made
afresh, and only when they stay inside the tree (as tarfile's `data` filter would).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

import git

_BLOB, _EXECUTABLE, _SYMLINK, _SUBMODULE = b"100644", b"100755", b"120000", b"160000"
_READ_ONLY, _READ_ONLY_EXECUTABLE = 0o444, 0o555
_STORE_ATTEMPTS = 5


def materialize(repo: git.Repo, sha: str, destination: Path, store: Path) -> None:
    """Fill the empty directory `destination` with commit `sha`'s files, linked from `store`."""
    store.mkdir(parents=True, exist_ok=True)
    # Plain strings, not Paths: at thousands of files pathlib costs as much as the links.
    root, blobs = os.fspath(destination), os.fspath(store)
    made = {""}
    for mode, blob, path in _entries(repo, sha):
        directory = os.path.dirname(path)
        if directory not in made:
            os.makedirs(os.path.join(root, directory), exist_ok=True)
            while directory not in made:
                made.add(directory)
                directory = os.path.dirname(directory)
        target = os.path.join(root, path)
        if mode == _SUBMODULE:
            os.makedirs(target, exist_ok=True)  # as git archive does: an empty directory
        elif mode == _SYMLINK:
            _symlink(repo, blob, path, target)
        else:
            _link(repo, blob, mode == _EXECUTABLE, os.path.join(blobs, blob), target)


def _entries(repo: git.Repo, sha: str) -> list[tuple[bytes, str, str]]:
    """(mode, blob sha, path) of every file in the commit, from one `ls-tree`."""
    listing: bytes = repo.git.execute(
        ["git", "ls-tree", "-r", "-z", "--full-tree", sha], stdout_as_string=False
    )
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, _kind, blob = meta.split(b" ")
        entries.append((mode, blob.decode("ascii"), os.fsdecode(path)))
    return entries


def _link(repo: git.Repo, blob: str, executable: bool, stored: str, target: str) -> None:
    if executable:
        stored += "x"
    try:
        os.link(stored, target)
    except FileNotFoundError:  # first time this content is seen (or pruned since)
        _store_and_link(repo, blob, executable, stored, target)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        _write(repo, blob, executable, target)  # no hard links here: a plain copy


def _store_and_link(repo: git.Repo, blob: str, executable: bool, stored: str, target: str) -> None:
    # Pruning (`export_pruning`) deletes store files no export links to, which a blob
    # just stored is until linked: if it went in between, it is stored again.
    for _ in range(_STORE_ATTEMPTS - 1):
        _store(repo, blob, executable, stored)
        try:
            os.link(stored, target)
        except FileNotFoundError:
            continue
        return
    _store(repo, blob, executable, stored)
    os.link(stored, target)


def _store(repo: git.Repo, blob: str, executable: bool, stored: str) -> None:
    # Written under a temporary name and renamed: a crash or a concurrent export never
    # leaves a half-written file under the blob's name.
    handle, temporary = tempfile.mkstemp(prefix=".blob.", dir=os.path.dirname(stored))
    try:
        with os.fdopen(handle, "wb") as sink:
            sink.write(_content(repo, blob))
        os.chmod(temporary, _READ_ONLY_EXECUTABLE if executable else _READ_ONLY)
        os.replace(temporary, stored)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write(repo: git.Repo, blob: str, executable: bool, target: str) -> None:
    with open(target, "wb") as sink:
        sink.write(_content(repo, blob))
    os.chmod(target, _READ_ONLY_EXECUTABLE if executable else _READ_ONLY)


def _symlink(repo: git.Repo, blob: str, path: str, target: str) -> None:
    pointee = os.fsdecode(_content(repo, blob))
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), pointee))
    if os.path.isabs(pointee) or resolved == ".." or resolved.startswith("../"):
        return  # pointing out of the tree: the agent does not get it
    os.symlink(pointee, target)


def _content(repo: git.Repo, blob: str) -> bytes:
    data: bytes = repo.odb.stream(bytes.fromhex(blob)).read()
    return data
