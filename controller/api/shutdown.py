"""A graceful stop on SIGTERM and SIGINT: stop taking work, settle, stop agents, exit 0.

uvicorn handles both signals itself and, once its server has stopped, raises the signal
again so the process dies "as expected". For `serve` that is the wrong ending: the
default SIGTERM action ends the process before the controller stops its agents (they
then die by SIGKILL through their PDEATHSIG, their detached children not at all), and
the exit status says the controller was killed. So `serve` runs uvicorn without its
signal handling and owns the signals here:

1. the first signal stops the poll loop (no new syncs) and the HTTP server (no new
   connections; open ones get `GRACEFUL_HTTP_SECONDS` to finish, `logs -f` included);
2. reconciles in flight get `SETTLE_SECONDS` to finish their
   rollouts; any still running then are abandoned: their rollout records stay
   `Progressing` with nothing marked deployed, and the next start resumes that same
   record instead of writing a new one;
3. the controller stops every agent (its whole process tree, SIGTERM then SIGKILL) and
   the process exits 0.

A second signal skips what is left of the waiting in steps 1 and 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import uvicorn

log = logging.getLogger("shipyard")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACEFUL_HTTP_SECONDS = 5.0
SETTLE_SECONDS = 10.0


class Server(uvicorn.Server):
    """uvicorn's server, leaving SIGTERM and SIGINT to `Signals`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Signals:
    """SIGTERM and SIGINT, turned into a stop request for `server` (and a force on repeat)."""

    def __init__(self, server: uvicorn.Server, *, on_request: Callable[[], object]) -> None:
        self.server = server
        self.on_request = on_request  # stops taking work, at once
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()

    @contextlib.contextmanager
    def installed(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not main thread
                loop.add_signal_handler(sig, self._received, sig)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            log.warning("%s again: stopping without waiting", sig.name)
            self.forced.set()
            self.server.force_exit = True
            return
        log.warning("%s: stopping gracefully", sig.name)
        self.requested.set()
        self.on_request()
        self.server.should_exit = True


async def settle(wait_idle: Callable[[], Coroutine[Any, Any, None]], signals: Signals) -> None:
    """Give work in flight `SETTLE_SECONDS` to finish (less if a second signal comes)."""
    work = asyncio.create_task(wait_idle())
    forced = asyncio.create_task(signals.forced.wait())
    try:
        done, _ = await asyncio.wait(
            {work, forced}, timeout=SETTLE_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if work not in done:
            log.warning("work still in flight after %gs; abandoning it", SETTLE_SECONDS)
    finally:
        for task in (work, forced):
            task.cancel()
        await asyncio.gather(work, forced, return_exceptions=True)
