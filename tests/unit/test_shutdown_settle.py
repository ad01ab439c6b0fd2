"""Settling on a stop: idle work ends the wait at once; a second signal ends it too.

Every `serve` stop passes through `settle`; when it waited for the second signal as well
as for the work, each stop cost the whole settle time (10 s) even with nothing in flight.
"""

from __future__ import annotations

import asyncio

import uvicorn

from controller.api import shutdown


def signals() -> shutdown.Signals:
    server = shutdown.Server(uvicorn.Config(app=lambda *_: None))
    return shutdown.Signals(server, on_request=lambda: None)


async def idle() -> None:
    return None


async def forever() -> None:
    await asyncio.Event().wait()


def test_idle_work_ends_the_settling_at_once() -> None:
    async def scenario() -> None:
        # Bounded well below SETTLE_SECONDS: waiting that long means the idle work was
        # not what ended the wait.
        await asyncio.wait_for(
            shutdown.settle(idle, signals()), timeout=shutdown.SETTLE_SECONDS / 2
        )

    asyncio.run(scenario())


def test_a_second_signal_ends_the_settling_of_work_in_flight() -> None:
    async def scenario() -> None:
        stop = signals()
        settling = asyncio.create_task(shutdown.settle(forever, stop))
        await asyncio.sleep(0)
        assert not settling.done()
        stop.forced.set()
        await asyncio.wait_for(settling, timeout=shutdown.SETTLE_SECONDS / 2)

    asyncio.run(scenario())
