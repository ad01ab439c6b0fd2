"""Which event loop `shipyard serve` runs on: uvloop where it is installed, else asyncio's.

Every agent request passes through the router on the controller's event loop, and the
loop's own work (polling, callbacks, transport writes) is a large share of what a request
costs there; uvloop (asyncio's API over libuv) does that work in C. It is a dependency
on the platforms it ships wheels for; elsewhere, or with `--event-loop asyncio`, serve
runs on asyncio's own loop and behaves the same, only slower (docs/performance.md,
"Router on uvloop").
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_log = logging.getLogger(__name__)

AUTO = "auto"
CHOICES = (AUTO, "uvloop", "asyncio")


def available(name: str) -> bool:
    """Whether the loop `name` can run here (asyncio's always can)."""
    if name == "uvloop":
        return importlib.util.find_spec("uvloop") is not None
    return name in CHOICES


def resolve(name: str) -> str:
    """The loop `name` stands for: `auto` is uvloop when installed, else asyncio."""
    if name not in CHOICES:
        raise ValueError(f"unknown event loop {name!r}; choose from {', '.join(CHOICES)}")
    if name == AUTO:
        return "uvloop" if available("uvloop") else "asyncio"
    if not available(name):
        raise ValueError(f"the {name} event loop is not installed here; use asyncio or auto")
    return name


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop function for `asyncio.Runner(loop_factory=…)`."""
    if resolve(name) == "uvloop":
        import uvloop  # noqa: PLC0415 - only where it is installed and chosen

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str = AUTO) -> T:
    """`asyncio.run(main)` on the loop `name`."""
    loop_factory = factory(name)
    _log.info("running on the %s event loop", resolve(name))
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)
