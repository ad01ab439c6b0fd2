"""Removes exported checkouts nobody needs any more, and the blobs only they linked to.

`Mirror.export` writes `<checkouts>/<sha>/` (a tree of hard links) and, beside it,
`<checkouts>/.blobs/` (one read-only file per content). Neither is ever removed by the
export side, so without this every commit of every branch ever deployed stays on disk.

The caller says which commits must stay; everything else goes:

- a checkout is first renamed to a dot-name (atomic), then deleted. An export of the
  same commit running at that moment finds no directory and builds a fresh one; it never
  sees a half-deleted tree.
- a blob goes when its link count is 1: no checkout holds it. An export that links it
  at the same moment keeps the content (its link is the inode's last name), and one
  that finds it gone writes it again (`blob_store` re-stores a missing blob).
- the leftovers of an export or a blob write that crashed (`.<sha>.*` staging trees,
  `.blob.*` files) go once they are older than `STALE_AFTER_SECONDS`; younger ones may
  belong to an export in progress and are left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from controller.source import spare_trees
from controller.source.mirror import BLOB_STORE

TRASH_PREFIX = ".pruning-"
STALE_AFTER_SECONDS = 3600.0
_COMMIT_LENGTHS = (40, 64)  # SHA-1 and SHA-256 object names


@dataclass
class Pruned:
    """What one pass removed (the bytes are the blobs' sizes, links not counted)."""

    checkouts: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    leftovers: int = 0


def unneeded_checkouts(checkouts: Path, needed: Collection[str]) -> list[str]:
    """Names of the commit checkouts under `checkouts` that are not in `needed`."""
    return [name for name in _checkout_names(checkouts) if name not in needed]


def set_aside(checkouts: Path, names: Collection[str]) -> list[Path]:
    """Rename each checkout out of the way (atomic, fast); returns what to delete.

    Done right after the caller decided what is needed, with nothing in between that
    could start using one of them.
    """
    moved = []
    for name in names:
        trash = checkouts / f"{TRASH_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        try:
            (checkouts / name).rename(trash)
        except OSError:
            continue  # already gone
        moved.append(trash)
    return moved


def delete(checkouts: Path, moved: Collection[Path], *, now: float | None = None) -> Pruned:
    """Delete set-aside checkouts, then crash leftovers, then blobs no checkout links."""
    pruned = Pruned()
    for trash in moved:
        shutil.rmtree(trash, ignore_errors=True)
        pruned.checkouts += 1
    pruned.leftovers += _delete_leftovers(checkouts, time.time() if now is None else now)
    _delete_unlinked_blobs(checkouts / BLOB_STORE, pruned, time.time() if now is None else now)
    return pruned


def _checkout_names(checkouts: Path) -> list[str]:
    try:
        entries = list(os.scandir(checkouts))
    except FileNotFoundError:
        return []
    return [
        entry.name
        for entry in entries
        if len(entry.name) in _COMMIT_LENGTHS
        and all(c in "0123456789abcdef" for c in entry.name)
        and entry.is_dir(follow_symlinks=False)
    ]


def _delete_leftovers(checkouts: Path, now: float) -> int:
    """Staging trees of crashed exports, and set-aside trees a crash left undeleted."""
    removed = 0
    try:
        entries = list(os.scandir(checkouts))
    except FileNotFoundError:
        return 0
    for entry in entries:
        # The blob store, and spare trees (`spare_trees` removes those of gone processes).
        if not entry.name.startswith(".") or entry.name in (BLOB_STORE, spare_trees.SPARES):
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith(TRASH_PREFIX) or _stale(entry, now):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def _delete_unlinked_blobs(store: Path, pruned: Pruned, now: float) -> None:
    try:
        entries = list(os.scandir(store))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            status = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if entry.name.startswith("."):  # a blob being written, or a crash's leftover
            if now - status.st_mtime > STALE_AFTER_SECONDS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    pruned.leftovers += 1
            continue
        if status.st_nlink == 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                pruned.blobs += 1
                pruned.blob_bytes += status.st_size


def _stale(entry: os.DirEntry[str], now: float) -> bool:
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS
    except FileNotFoundError:
        return False
