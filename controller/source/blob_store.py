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
from typing import NamedTuple

import git

from controller.source import listing as listings

_READ_ONLY, _READ_ONLY_EXECUTABLE = 0o444, 0o555
_STORE_ATTEMPTS = 5


Files = dict[str, listings.Entry]


def materialize(repo: git.Repo, files: Files, destination: Path, store: Path) -> None:
    """Fill the empty directory `destination` with the listed files, linked from `store`."""
    update(repo, changes({}, files), destination, store)


class Changes(NamedTuple):
    gone: list[tuple[str, listings.Entry]]  # removed, or replaced by another entry
    placed: list[tuple[str, listings.Entry]]  # added, or replacing another entry

    def __len__(self) -> int:
        return len(self.gone) + len(self.placed)


def changes(old: Files, new: Files) -> Changes:
    """What differs between two listings (set operations in C, not a loop per path)."""
    return Changes(list(old.items() - new.items()), list(new.items() - old.items()))


def update(repo: git.Repo, diff: Changes, destination: Path, store: Path) -> None:
    """Apply `diff` to `destination`, which holds exactly the files it was taken from.

    Only paths whose entry differs are touched: those gone or changed are removed (with
    directories left empty), then those added or changed are placed.
    """
    store.mkdir(parents=True, exist_ok=True)
    # Plain strings, not Paths: at thousands of files pathlib costs as much as the links.
    root, blobs = os.fspath(destination), os.fspath(store)
    for path, entry in diff.gone:
        _remove(root, path, entry)
    made = {""}
    for path, entry in diff.placed:
        mode, blob = entry.mode, entry.blob
        directory = os.path.dirname(path)
        if directory not in made:
            os.makedirs(os.path.join(root, directory), exist_ok=True)
            while directory not in made:
                made.add(directory)
                directory = os.path.dirname(directory)
        target = os.path.join(root, path)
        if mode == listings.SUBMODULE:
            os.makedirs(target, exist_ok=True)  # as git archive does: an empty directory
        elif mode == listings.SYMLINK:
            _symlink(repo, blob, path, target)
        else:
            _link(repo, blob, mode == listings.EXECUTABLE, os.path.join(blobs, blob), target)


def _remove(root: str, path: str, entry: listings.Entry) -> None:
    target = os.path.join(root, path)
    with contextlib.suppress(FileNotFoundError):  # an out-of-tree symlink was never made
        if entry.mode == listings.SUBMODULE:
            os.rmdir(target)
        else:
            os.unlink(target)
    # Git keeps no empty directories, and neither does an export.
    directory = os.path.dirname(path)
    while directory:
        try:
            os.rmdir(os.path.join(root, directory))
        except OSError:  # not empty (or already gone): nor are its parents
            break
        directory = os.path.dirname(directory)


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
