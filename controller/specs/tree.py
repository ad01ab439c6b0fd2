"""The seam between manifest loading and where files come from.

The loader reads manifests and prompt files through `Tree`, so the same checks run on a
working directory (`shipyard validate`) and, later, on a commit read straight from git
objects. Paths are POSIX paths relative to the repository root.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path
from typing import Protocol

MANIFEST_SUFFIXES = (".yaml", ".yml")


class TreeError(Exception):
    """A file cannot be used; the message says why in words a person can act on."""


class Tree(Protocol):
    def manifest_paths(self, root: str) -> list[str]:
        """Repository-relative paths of every `*.yaml` / `*.yml` file under `root`, sorted."""
        ...

    def read(self, path: str, limit: int) -> bytes:
        """The bytes of a regular file inside the repository, at most `limit` of them.

        Raises `TreeError` when the file is missing, not a regular file, outside the
        repository (by `..` or by a symlink) or larger than `limit`.
        """
        ...


def normalize(path: str) -> str:
    """A repository-relative path in canonical form; `TreeError` when it would escape."""
    if not path or "\x00" in path:
        raise TreeError("path is empty or contains a NUL byte")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise TreeError(f"{path!r} must be relative to the repository root, not absolute")
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        raise TreeError(f"{path!r} points outside the repository")
    return normal


class FilesystemTree:
    """A repository as a directory on disk (a working tree)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def manifest_paths(self, root: str) -> list[str]:
        base = self.root / normalize(root)
        if base.is_file():
            return [normalize(root)]
        found: list[str] = []
        for directory, subdirectories, files in os.walk(base):
            subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
            for name in files:
                if name.endswith(MANIFEST_SUFFIXES):
                    full = Path(directory) / name
                    found.append(full.relative_to(self.root).as_posix())
        return sorted(found)

    def read(self, path: str, limit: int) -> bytes:
        relative = normalize(path)
        candidate = self.root / relative
        real = Path(os.path.realpath(candidate))
        if real != self.root and self.root not in real.parents:
            raise TreeError(f"{path!r} is a symlink that points outside the repository")
        try:
            info = real.stat()
        except FileNotFoundError as error:
            raise TreeError(f"{path!r} does not exist") from error
        except OSError as error:
            raise TreeError(f"{path!r} cannot be read: {error.strerror}") from error
        if not stat.S_ISREG(info.st_mode):
            raise TreeError(f"{path!r} is not a regular file")
        if info.st_size > limit:
            raise TreeError(f"{path!r} is {info.st_size} bytes, over the limit of {limit}")
        with real.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise TreeError(f"{path!r} is over the limit of {limit} bytes")
        return data
