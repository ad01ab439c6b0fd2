"""Rollout waits woken by the watch, instead of each looking again on a timer.

A thousand rollout waits polling the informers' caches every quarter second cost the
event loop more than the waits themselves (`bench/kube_sync.py`): each tick read a
Deployment and its pods only to find nothing new. Here a wait arms itself for the keys
it reads (a Deployment's, its version's pods') before it reads them, and the informers'
watch thread fires the keys of what changed; a change between the read and the sleep
still wakes it, since the wait was armed first. A timeout remains for what no event
announces (a crash state that has lasted its grace period, a watch that fell behind).

Armed waits are held weakly: a wait that returned without sleeping again is dropped by
the garbage collector, not kept until its key next changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Hashable, Iterable

_SWEEP_EVERY = 4096  # arms between sweeps of keys no wait is armed on any more


class Wakeup:
    """One armed wait: `sleep` returns when any of its keys fires, or on timeout."""

    def __init__(self, future: asyncio.Future[None]) -> None:
        self._future = future

    @property
    def woken(self) -> bool:
        """Whether one of its keys fired."""
        return self._future.done()

    async def sleep(self, timeout: float) -> None:
        if timeout > 0:
            await asyncio.wait((self._future,), timeout=timeout)


class Wakeups:
    def __init__(self) -> None:
        self._armed: dict[Hashable, weakref.WeakSet[asyncio.Future[None]]] = {}
        self._lock = threading.Lock()  # `fire` runs on the watch threads
        self._arms = 0

    def arm(self, keys: Iterable[Hashable]) -> Wakeup:
        """A wait for the next change to any of `keys`, counted from now."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            for key in keys:
                self._armed.setdefault(key, weakref.WeakSet()).add(future)
            self._arms += 1
            if self._arms % _SWEEP_EVERY == 0:
                for key in [key for key, armed in self._armed.items() if not armed]:
                    del self._armed[key]
        return Wakeup(future)

    def fire(self, key: Hashable) -> None:
        """Wake every wait armed on `key` (from any thread)."""
        with self._lock:
            armed = self._armed.pop(key, None)
            futures = list(armed) if armed is not None else []
        for future in futures:
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits
                future.get_loop().call_soon_threadsafe(_wake, future)

    def __len__(self) -> int:
        """Keys some wait is armed on (what a sweep keeps)."""
        with self._lock:
            return sum(1 for armed in self._armed.values() if armed)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
