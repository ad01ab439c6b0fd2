"""Every process an agent started, found and ended together, however it detached.

An agent's process group is not enough to stop it: a child that calls `setsid` (or a
daemon that double-forks) leaves the group, and if it keeps the agent's stdout open it
holds the output pipes, and the port, for ever. So each agent gets a `ProcessTree`:

- where the machine lets the controller create cgroups v2 (root, or a delegated
  subtree), a cgroup of its own that the launcher joins before `exec`. Membership follows
  every fork, `setsid` or not, and `cgroup.kill` ends all of it at once;
- elsewhere (or if the agent could not join its cgroup), a scan of /proc: the agent's
  process group and session, descendants by parent pid, processes carrying the tree's
  marker variable in their environment, and processes holding the agent's output pipes.
  That finds a child that detached (it inherited the marker and usually the pipes); only
  a daemon that both scrubs its environment and closes the pipes escapes it. A scan
  reads every process's /proc entries (some 20 ms for 150 processes), so waits run it in
  a worker thread, polling less and less often.

Ending a tree is SIGTERM to every member, a grace period, then SIGKILL, each wait bounded:
nothing here waits for a process, or a pipe, without a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

_log = logging.getLogger(__name__)

MARKER_ENV = "SHIPYARD_PROCESS_TREE"
"""Carries a tree's marker into the agent; inherited by whatever it starts."""

CGROUP_ENV = "SHIPYARD_LAUNCH_CGROUP"
"""The cgroup.procs file the launcher joins before exec (removed from the agent's env)."""

_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 0.5
_KILL_WAIT_SECONDS = 5.0  # after SIGKILL; only an unkillable process (D state) takes longer
_CGROUP_PREFIX = "shipyard-"
_names = itertools.count(1)

Ending = Literal["terminated", "killed", "stuck"]


def cgroup_root() -> Path | None:
    """The controller's own cgroup v2 directory, if this machine has one we may write."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    mount = next((_mount_point(line) for line in mounts if " - cgroup2 " in line), None)
    if own is None or mount is None:
        return None
    directory = Path(mount) / own.lstrip("/")
    return directory if os.access(directory, os.W_OK) else None


def _mount_point(mountinfo_line: str) -> str:
    # Field 5 is the mount point; octal escapes stand for spaces and the like.
    raw = mountinfo_line.split()[4]
    return raw.encode().decode("unicode_escape")


class CgroupHome:
    """This controller's directory of agent cgroups: `shipyard-<pid>` beside its own.

    Created on first use; `sweep` removes what a controller killed before it could clean
    up left behind (detached children included) once its pid is gone.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = root / f"{_CGROUP_PREFIX}{os.getpid()}"

    @classmethod
    def find(cls) -> CgroupHome | None:
        root = cgroup_root()
        if root is None:
            _log.info("no writable cgroup v2; finding agent processes through /proc")
            return None
        home = cls(root)
        try:
            home.directory.mkdir(exist_ok=True)
        except OSError as exc:
            _log.info("no agent cgroups (%s); finding agent processes through /proc", exc)
            return None
        home.sweep()
        return home

    def create(self, name: str) -> Path | None:
        path = self.directory / name
        try:
            path.mkdir()
        except OSError as exc:
            _log.warning("cannot create cgroup %s: %s", path, exc)
            return None
        return path

    def sweep(self) -> None:
        """End and remove agent cgroups of controllers that no longer run."""
        for stale in self.root.glob(f"{_CGROUP_PREFIX}*"):
            owner = stale.name.removeprefix(_CGROUP_PREFIX)
            if not owner.isdigit() or int(owner) == os.getpid() or _alive(int(owner)):
                continue
            for group in [*stale.iterdir(), stale]:
                if group.is_dir():
                    _cgroup_kill(group)
            for group in [*stale.iterdir(), stale]:
                if group.is_dir():
                    _wait_empty_blocking(group, _KILL_WAIT_SECONDS)
                    with contextlib.suppress(OSError):
                        group.rmdir()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.directory.rmdir()


class ProcessTree:
    """One agent's processes across its restarts: found, signalled and ended together."""

    def __init__(self, label: str, home: CgroupHome | None) -> None:
        self.marker = f"{os.getpid()}-{next(_names)}-{secrets.token_hex(4)}"
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
        self.cgroup = home.create(f"{name}-{next(_names)}") if home is not None else None
        self._leader: int | None = None
        self._pipes: frozenset[str] = frozenset()
        self._contained = False  # the current run joined the cgroup: no /proc scan needed

    def launch_env(self) -> dict[str, str]:
        """Variables for the launcher: the marker (kept) and the cgroup to join (removed)."""
        env = {MARKER_ENV: self.marker}
        if self.cgroup is not None:
            env[CGROUP_ENV] = str(self.cgroup / "cgroup.procs")
        return env

    def adopt(self, pid: int, pipe_fds: Iterable[int]) -> None:
        """`pid` is the agent's current run, leading its own session; `pipe_fds` its output."""
        self._leader = pid
        self._contained = False
        links = set()
        for fd in pipe_fds:
            with contextlib.suppress(OSError):
                links.add(os.readlink(f"/proc/self/fd/{fd}"))
        self._pipes = frozenset(link for link in links if link.startswith("pipe:"))

    def launched(self) -> None:
        """The launcher has exec'd (so it joined the cgroup, if it could): check which."""
        if self.cgroup is None or self._leader is None:
            return
        self._contained = _in_cgroup(self._leader, self.cgroup)
        if not self._contained:
            _log.warning("agent %d did not join %s; relying on /proc", self._leader, self.cgroup)

    def run_ended(self) -> None:
        """The run's leader was reaped and its tree ended: forget its pid and pipes.

        Both may be reused by unrelated processes from now on; the marker (and the
        cgroup) still find anything of this tree that survived.
        """
        self._leader = None
        self._pipes = frozenset()

    def members(self) -> set[int]:
        """Live (not zombie) processes of the tree right now."""
        found = set(_cgroup_members(self.cgroup)) if self.cgroup is not None else set()
        if not self._contained:
            found |= _scan(self._leader, self.marker, self._pipes)
        found.discard(os.getpid())
        return {pid for pid in found if _alive(pid)}

    def signal(self, sig: signal.Signals) -> None:
        # Member by member, never `killpg`: once its members are gone, a group's id may
        # belong to somebody else.
        if sig is signal.SIGKILL and self.cgroup is not None:
            _cgroup_kill(self.cgroup)
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def kill_now(self) -> None:
        """SIGKILL everything at once, without waiting (cancellation and shutdown paths)."""
        self.signal(signal.SIGKILL)

    async def end(self, grace: float) -> Ending:
        """SIGTERM all members, SIGKILL what is left after `grace`, until none is left.

        `grace` 0 kills at once. Every wait is bounded, so a process stuck in the kernel
        costs at most `grace` plus a few seconds, never the caller's loop.
        """
        if not self.members():
            return "terminated"
        if grace > 0:
            self.signal(signal.SIGTERM)
            if await self._wait_empty(grace):
                return "terminated"
        for _ in range(3):  # members may fork while being killed; catch the stragglers
            self.signal(signal.SIGKILL)
            if await self._wait_empty(_KILL_WAIT_SECONDS / 3):
                return "killed"
        _log.warning("processes %s of tree %s did not die", sorted(self.members()), self.marker)
        return "stuck"

    async def _wait_empty(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        poll = _POLL_SECONDS
        while True:
            # A cgroup is read in microseconds; a /proc scan is not, so it leaves the loop.
            members = self.members() if self._contained else await asyncio.to_thread(self.members)
            if not members:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(poll, remaining))
            poll = min(poll * 2, _MAX_POLL_SECONDS)

    def close(self) -> None:
        """Remove the (empty) cgroup; a tree that is not empty keeps it, to be swept."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()


def _scan(leader: int | None, marker: str, pipes: frozenset[str]) -> set[int]:
    parents: dict[int, int] = {}
    found: set[int] = set()
    needle = f"{MARKER_ENV}={marker}".encode()
    # The controller holds the read end of every agent's pipes: counting it in would
    # count in all of its children, every other agent and git process included.
    never = {1, os.getpid()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in never:
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        ppid, pgrp, session = stat
        parents[pid] = ppid
        if leader is not None and leader in (pid, pgrp, session):
            found.add(pid)
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            environ = b""
        if needle in environ.split(b"\0"):
            found.add(pid)
            continue
        if pipes and _holds(pid, pipes):
            found.add(pid)
    # Descendants of members (a child that cleared its environment and closed the pipes
    # but has not been orphaned yet).
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def _stat(pid: int) -> tuple[int, int, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2]), int(fields[3])


def _holds(pid: int, pipes: frozenset[str]) -> bool:
    try:
        with os.scandir(f"/proc/{pid}/fd") as fds:
            for fd in fds:
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in pipes:
                        return True
    except OSError:
        return False
    return False


def _alive(pid: int) -> bool:
    """True if `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _cgroup_members(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for procs in cgroup.glob("**/cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(line) for line in procs.read_text().split())
    return pids


def _cgroup_kill(cgroup: Path) -> None:
    kill_file = cgroup / "cgroup.kill"
    try:
        kill_file.write_text("1")
    except OSError:
        pass  # before Linux 5.14: kill members one by one
    else:
        return
    for pid in _cgroup_members(cgroup):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _in_cgroup(pid: int, cgroup: Path) -> bool:
    try:
        return pid in _cgroup_members(cgroup)
    except OSError:
        return False


def _wait_empty_blocking(cgroup: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in _cgroup_members(cgroup)) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
