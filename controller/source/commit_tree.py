"""A commit read straight from git objects, as the manifest loader's `Tree`.

The reconciler loads manifests at exact commits of many branches; a checkout per commit
would cost a working tree each and race with fetches. Reading objects needs neither.
The rules are those of `FilesystemTree` (no way out of the repository, symlinks followed
inside it, a size limit) and so are the messages, so a commit and a working directory
look the same to the loader and to the person reading its problems.

Given the tree's flat listing (`listing`), the common cases (a file at a plain path, the
manifests under a real directory) are dictionary lookups; only paths the listing cannot
answer alone (through a symlink, missing, not a file) walk the tree objects.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import git

from controller.source import listing as listings
from controller.specs import tree as trees

# Far below the kernel's 40: manifests have no use for long chains, and each link costs
# an object read.
MAX_SYMLINKS = 8

_Entry = git.Tree | git.Blob | git.Submodule


class _NotADirectory(trees.TreeError):
    """A file stands where the path needs a directory."""


class CommitTree:
    """The files of one commit; use it on the thread that made it (gitpython's rule)."""

    def __init__(
        self, root: git.Tree, listing: Callable[[], listings.Listing] | None = None
    ) -> None:
        self._root = root
        self._list = listing
        self._listing: dict[str, listings.Entry] | None = None
        # Parsed directories by their resolved path: a load reads many files from the
        # same few directories, and each parse is an object read.
        self._directories: dict[tuple[str, ...], git.Tree] = {(): root}
        self._indexes: dict[tuple[str, ...], dict[str, _Entry]] = {}

    @property
    def identity(self) -> str:
        """The tree's object id: two trees with equal ids hold the same files."""
        return str(self._root.hexsha)

    def manifest_paths(self, root: str) -> list[str]:
        start = trees.normalize(root)
        listed = self._listed_manifests(start)
        if listed is not None:
            return listed
        try:
            found = self._lookup(root, start)
        except _NotADirectory:
            return []
        if found is None or isinstance(found, git.Submodule):
            return []
        if isinstance(found, git.Blob):
            return [start]
        paths: list[str] = []
        self._walk(root, found, "" if start == "." else f"{start}/", paths)
        return sorted(paths)

    def read(self, path: str, limit: int) -> bytes:
        entry = self._listed_file(path)
        if entry is not None:
            binsha = bytes.fromhex(entry.blob)
            odb = self._root.repo.odb
            size = odb.info(binsha).size
            if size > limit:
                raise trees.TreeError(f"{path!r} is {size} bytes, over the limit of {limit}")
            listed: bytes = odb.stream(binsha).read()
            return listed
        blob = self._regular_file(path)
        if blob.size > limit:
            raise trees.TreeError(f"{path!r} is {blob.size} bytes, over the limit of {limit}")
        data: bytes = blob.data_stream.read()
        return data

    def blob_id(self, path: str) -> str | None:
        """The blob sha of a readable file (symlinks followed): equal ids, equal bytes."""
        entry = self._listed_file(path)
        if entry is not None:
            return entry.blob
        try:
            return self._regular_file(path).hexsha
        except trees.TreeError:
            return None

    def _files(self) -> dict[str, listings.Entry] | None:
        if self._listing is None and self._list is not None:
            self._listing = self._list().files
        return self._listing

    def _listed_file(self, path: str) -> listings.Entry | None:
        """The entry of a regular file at `path` when the listing has it as it stands.

        A listed path names a file reached through real directories only (the listing
        follows trees, never symlinks), so it is exactly what the tree walk would find.
        """
        files = self._files()
        if files is None:
            return None
        # Listed paths are canonical: a path found as written needs no normalizing.
        entry = files.get(path)
        if entry is None:
            try:
                entry = files.get(trees.normalize(path))
            except trees.TreeError:
                return None  # the walk says why, in its words
        return entry if entry is not None and entry.regular else None

    def _listed_manifests(self, start: str) -> list[str] | None:
        """`manifest_paths` from the listing when `start` is a real directory in it."""
        files = self._files()
        if files is None:
            return None
        prefix = "" if start == "." else f"{start}/"
        under = [path for path in files if path.startswith(prefix)] if prefix else list(files)
        if not under:
            return None  # not a directory with files in it (absent, a file, a symlink)
        paths = []
        for path in under:
            if not path.endswith(trees.MANIFEST_SUFFIXES):
                continue
            # As the walk: below `start`, no hidden directories; submodules are no files.
            directories = path[len(prefix) :].rpartition("/")[0]
            if directories.startswith(".") or "/." in directories:
                continue
            if files[path].mode != listings.SUBMODULE:
                paths.append(path)
        return sorted(paths)

    def _regular_file(self, path: str) -> git.Blob:
        found = self._lookup(path, trees.normalize(path))
        if found is None:
            raise trees.TreeError(f"{path!r} does not exist")
        if not isinstance(found, git.Blob):
            raise trees.TreeError(f"{path!r} is not a regular file")
        return found

    def _walk(self, shown: str, directory: git.Tree, prefix: str, into: list[str]) -> None:
        for entry in self._entries(shown, directory):
            if isinstance(entry, git.Tree):
                if not entry.name.startswith("."):
                    self._walk(shown, entry, f"{prefix}{entry.name}/", into)
            elif isinstance(entry, git.Blob) and entry.name.endswith(trees.MANIFEST_SUFFIXES):
                into.append(prefix + entry.name)

    def _lookup(self, shown: str, path: str) -> _Entry | None:
        """The object at `path` after following symlinks, like `realpath`; None if absent.

        `shown` is the path as the caller wrote it, for messages.
        """
        pending = [part for part in reversed(path.split("/")) if part not in ("", ".")]
        where: tuple[str, ...] = ()
        current: _Entry = self._root
        links = 0
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if not isinstance(current, git.Tree):
                raise _NotADirectory(f"{shown!r} cannot be read: Not a directory")
            if name == "..":
                # Only a symlink target can bring `..` here: `normalize` removed the rest.
                if not where:
                    raise trees.TreeError(
                        f"{shown!r} is a symlink that points outside the repository"
                    )
                where = where[:-1]
                current = self._directories[where]
                continue
            entry = self._child(shown, current, where, name)
            if entry is None:
                return None
            if isinstance(entry, git.Blob) and stat.S_ISLNK(entry.mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise trees.TreeError(
                        f"{shown!r} cannot be read: Too many levels of symbolic links"
                    )
                target = entry.data_stream.read().decode("utf-8", "surrogateescape")
                if target.startswith("/"):
                    raise trees.TreeError(
                        f"{shown!r} is a symlink that points outside the repository"
                    )
                # Resolve the target from the link's own directory, which `current` still is.
                pending.extend(reversed(target.split("/")))
                continue
            where = (*where, name)
            current = entry
        return current

    def _child(
        self, shown: str, directory: git.Tree, where: tuple[str, ...], name: str
    ) -> _Entry | None:
        cached = self._directories.get((*where, name))
        if cached is not None:
            return cached
        index = self._indexes.get(where)
        if index is None:
            # One pass per directory: looking names up one by one would make reading every
            # file of a large directory quadratic.
            # From the path: a submodule's `.name` would look it up in `.gitmodules`.
            index = {
                os.fspath(entry.path).rpartition("/")[2]: entry
                for entry in self._entries(shown, directory)
            }
            self._indexes[where] = index
        entry = index.get(name)
        if isinstance(entry, git.Tree):
            self._directories[(*where, name)] = entry
        return entry

    @staticmethod
    def _entries(shown: str, directory: git.Tree) -> list[_Entry]:
        try:
            return list(directory)
        except (ValueError, TypeError) as error:
            # A hand-made tree object with invalid names or modes: say so, never a traceback.
            message = f"{shown!r} cannot be read: malformed git tree: {error}"
            raise trees.TreeError(message) from error
