"""Every file of a git tree, by path, read from tree objects and only where they changed.

Loading the manifests of a commit asks for the blob id of every manifest and prompt
file, and exporting it needs every file's mode and blob. Walking git's tree objects
through gitpython for that (an object per entry, each name validated) cost 50-100 ms at
1,000 agents, on every push, and a `git ls-tree` is a process per commit. Here tree
objects are read raw through the repository's long-lived `cat-file` and parsed by one
regular expression each; a new commit's listing starts from the last one read and
re-reads only the directories whose tree id changed, so a push that changes one file
reads the few trees on that file's path. Listings are kept by tree id: the loader, the
export and the evaluation of the same commit share one.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from typing import NamedTuple

import git

BLOB, EXECUTABLE, SYMLINK, SUBMODULE = b"100644", b"100755", b"120000", b"160000"
KEPT = 16  # listings of recent trees: the branches a sync is working on
PARSED_TREES = 256  # tree objects kept parsed: the directories of those listings

_ENTRY = re.compile(rb"([0-7]+) ([^\0]*)\0(.{20})", re.DOTALL)
_TREE = b"40000"


class Entry(NamedTuple):
    mode: bytes  # git's file mode, canonical as `git ls-tree` prints it
    blob: str  # object id (a commit id for a submodule)

    @property
    def regular(self) -> bool:
        """A plain or executable file: not a symlink, not a submodule."""
        return self.mode not in (SYMLINK, SUBMODULE)


class Listing:
    """`files`: path → entry for every file, recursively; `trees`: directory → tree id."""

    __slots__ = ("files", "trees")

    def __init__(self, files: dict[str, Entry], trees: dict[str, str]) -> None:
        self.files = files
        self.trees = trees


Entries = dict[str, tuple[bytes, str]]  # one tree object: name → (mode, object id)


def read(
    repo: git.Repo,
    tree: str,
    base: Listing | None = None,
    parsed: OrderedDict[str, Entries] | None = None,
) -> Listing:
    """The listing of tree `tree`; from `base` (another tree's), re-reading what differs.

    `parsed` keeps tree objects read before, by id (the trees of `base` usually), so a
    change reads only the new versions of the directories on its path.
    """
    listing = Listing(dict(base.files), dict(base.trees)) if base else Listing({}, {})
    _Reader(repo, listing, parsed if parsed is not None else OrderedDict()).sync("", tree)
    return listing


class _Reader:
    def __init__(self, repo: git.Repo, listing: Listing, parsed: OrderedDict[str, Entries]) -> None:
        self._odb = repo.odb
        self._files = listing.files
        self._trees = listing.trees
        self._parsed = parsed

    def sync(self, directory: str, tree: str) -> None:
        """Make what `directory` lists match tree `tree` (it matches its recorded tree)."""
        old = self._trees.get(directory)
        if old == tree:
            return
        self._trees[directory] = tree
        now = self._entries(tree)
        before = self._entries(old) if old is not None else {}
        for name in before.keys() - now.keys():
            self._drop(_join(directory, name), before[name])
        for name, (mode, sha) in now.items():
            previous = before.get(name)
            if previous == (mode, sha):
                continue
            path = _join(directory, name)
            if previous is not None and (previous[0] == _TREE) != (mode == _TREE):
                self._drop(path, previous)  # a file became a directory, or the reverse
            if mode == _TREE:
                self.sync(path, sha)
            else:
                self._files[path] = Entry(_canonical(mode), sha)

    def _drop(self, path: str, entry: tuple[bytes, str]) -> None:
        mode, sha = entry
        if mode != _TREE:
            self._files.pop(path, None)
            return
        self._trees.pop(path, None)
        for name, inner in self._entries(sha).items():
            self._drop(_join(path, name), inner)

    def _entries(self, tree: str) -> Entries:
        found = self._parsed.get(tree)
        if found is not None:
            self._parsed.move_to_end(tree)
            return found
        data = self._odb.stream(bytes.fromhex(tree)).read()
        entries = {os.fsdecode(name): (mode, sha.hex()) for mode, name, sha in _ENTRY.findall(data)}
        self._parsed[tree] = entries
        while len(self._parsed) > PARSED_TREES:
            self._parsed.popitem(last=False)
        return entries


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _canonical(mode: bytes) -> bytes:
    """As git reads a mode: any other regular file mode is 644 or 755."""
    if mode in (BLOB, EXECUTABLE, SYMLINK, SUBMODULE):
        return mode
    return EXECUTABLE if int(mode, 8) & 0o111 else BLOB


class Listings:
    """The listings of the last few trees read; safe to share between threads."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._listings: OrderedDict[str, Listing] = OrderedDict()
        self._parsed: OrderedDict[str, Entries] = OrderedDict()
        self._reading = threading.Lock()  # one reader at a time shares the parsed trees

    def get(self, repo: git.Repo, tree: str) -> Listing:
        with self._lock:
            found = self._listings.get(tree)
            if found is not None:
                self._listings.move_to_end(tree)
                return found
            # The newest listing is usually the previous commit of the branch pushed to.
            base = next(reversed(self._listings.values()), None)
        with self._reading:
            listing = read(repo, tree, base, self._parsed)
        with self._lock:
            self._listings[tree] = listing
            while len(self._listings) > self._kept:
                self._listings.popitem(last=False)
        return listing
