"""Commit directories made from a spare copy of an earlier commit, touching only what differs.

Every commit's files get a directory of their own: agents of the old version keep
running from theirs until traffic switches, so no directory an agent may use is ever
changed. Building one costs a hard link per file, ~30 µs each on this kind of disk: 60
ms or more at 2,000 files, on every push. So after each export a spare copy of that
commit's tree is built in the background, where nothing runs from it. The next export
takes the spare that differs least from its commit (one rename), changes only the paths
whose entries differ (the two listings compared in memory) and is renamed into place:
O(changed files) between a push and its agent. The copy for the push after is built
once this one is done, off that path.

Spares live in `<exports>/.spares/<pid>.<token>/`, one directory per process; those of a
process that is gone are removed when the next one builds its first spare.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import git

from controller.source import blob_store

log = logging.getLogger(__name__)

SPARES = ".spares"
KEPT = 2  # spares kept per process: the last exports, usually the heads being pushed to
BUILDER_NICENESS = 19


@dataclass(frozen=True)
class _Spare:
    path: Path
    exports: Path  # the directory whose exports it may become
    files: blob_store.Files


class SpareTrees:
    """Spare commit trees: `take` one for a new export, `prepare` one after it."""

    def __init__(self, repo: Callable[[], git.Repo | None], blobs: str, kept: int = KEPT) -> None:
        self._repo = repo  # this thread's repository (gitpython's are per thread)
        self._blobs = blobs  # the blob store's name inside an exports directory
        self._kept = kept
        self._token = f"{os.getpid()}.{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._ready: OrderedDict[Path, _Spare] = OrderedDict()
        self._pending: tuple[Path, blob_store.Files] | None = None
        self._builder: ThreadPoolExecutor | None = None
        self._swept: set[Path] = set()

    def take(self, exports: Path, files: blob_store.Files, into: Path) -> bool:
        """Make the empty directory `into` hold `files` from a spare; False if none fits."""
        with self._lock:
            candidates = [spare for spare in self._ready.values() if spare.exports == exports]
        if not candidates:
            return False
        diffs = [(blob_store.changes(spare.files, files), spare) for spare in candidates]
        diff, best = min(diffs, key=lambda pair: len(pair[0]))
        if len(diff) >= len(files):
            return False  # as many changes as files: a fresh export is no slower
        repo = self._repo()
        if repo is None:
            return False
        with self._lock:
            if self._ready.pop(best.path, None) is None:
                return False  # evicted meanwhile
        try:
            os.rename(best.path, into)  # onto the empty staging directory
        except OSError:
            log.warning("spare tree %s could not be taken; exporting in full", best.path)
            shutil.rmtree(best.path, ignore_errors=True)
            return False
        blob_store.update(repo, diff, into, exports / self._blobs)
        return True

    def prepare(self, exports: Path, files: blob_store.Files) -> None:
        """Build a spare of `files` in the background (only the newest request waits)."""
        with self._lock:
            idle = self._pending is None
            self._pending = (exports, files)
            if self._builder is None:
                self._builder = ThreadPoolExecutor(1, thread_name_prefix="shipyard-spares")
            if idle:
                self._builder.submit(self._build_pending)

    def settle(self) -> None:
        """Wait until the spare asked for last is built (or its build failed)."""
        with self._lock:
            builder = self._builder
        if builder is not None:
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                builder.submit(lambda: None).result()

    def close(self) -> None:
        """Finish the build under way, drop the others; spares on disk stay for reuse."""
        with self._lock:
            builder, self._builder = self._builder, None
            self._pending = None
        if builder is not None:
            builder.shutdown(wait=True, cancel_futures=True)

    def _build_pending(self) -> None:
        _lower_priority()
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        exports, files = pending
        try:
            self._build(exports, files)
        except Exception:
            # Only a spare is lost: the next export is a full one.
            log.warning("building a spare commit tree in %s failed", exports, exc_info=True)

    def _build(self, exports: Path, files: blob_store.Files) -> None:
        repo = self._repo()
        if repo is None:
            return
        mine = exports / SPARES / self._token
        if exports not in self._swept:
            self._swept.add(exports)
            _sweep(exports / SPARES, keep=mine.name)
        mine.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="tree.", dir=mine))
        try:
            blob_store.materialize(repo, files, path, exports / self._blobs)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        with self._lock:
            self._ready[path] = _Spare(path, exports, files)
            evicted = []
            while len(self._ready) > self._kept:
                evicted.append(self._ready.popitem(last=False)[1])
        for spare in evicted:
            shutil.rmtree(spare.path, ignore_errors=True)


def _lower_priority() -> None:
    """Spare trees take only CPU nothing else wants: right after an export, the agent
    process it was for is starting, and the links (~30 µs each, in the kernel) must not
    slow that down. Niceness applies per thread on Linux."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILDER_NICENESS)


def _sweep(spares: Path, keep: str) -> None:
    """Remove the spares of processes that are gone (they may be from a crash)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(spares):
            pid = entry.name.partition(".")[0]
            if entry.name != keep and not (pid.isdigit() and _alive(int(pid))):
                shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
