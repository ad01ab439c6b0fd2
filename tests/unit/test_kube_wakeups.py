"""Wakeups: an armed wait wakes on its key from another thread, and is not kept after."""

from __future__ import annotations

import asyncio
import gc
import threading

from controller.targets.kubernetes.wakeups import Wakeups

NEVER = 3600.0


def test_a_key_fired_from_another_thread_wakes_the_wait_armed_on_it() -> None:
    wakeups = Wakeups()

    async def main() -> None:
        wakeup = wakeups.arm([("Deployment", "ns", "a")])
        threading.Thread(target=wakeups.fire, args=(("Deployment", "ns", "a"),)).start()
        await asyncio.wait_for(wakeup.sleep(NEVER), 30)

    asyncio.run(main())


def test_a_change_between_arming_and_sleeping_is_not_missed() -> None:
    wakeups = Wakeups()

    async def main() -> None:
        wakeup = wakeups.arm([("Pod", "ns", "a", "v1"), ("Deployment", "ns", "a")])
        wakeups.fire(("Pod", "ns", "a", "v1"))
        await asyncio.wait_for(wakeup.sleep(NEVER), 30)

    asyncio.run(main())


def test_other_keys_do_not_wake_it_and_the_timeout_still_does() -> None:
    wakeups = Wakeups()

    async def main() -> bool:
        wakeup = wakeups.arm([("Deployment", "ns", "a")])
        wakeups.fire(("Deployment", "ns", "b"))
        wakeups.fire(("Deployment", "other", "a"))
        await wakeup.sleep(0.01)
        return wakeup.woken

    assert asyncio.run(main()) is False


def test_a_wait_that_returned_without_sleeping_is_not_kept() -> None:
    wakeups = Wakeups()

    async def main() -> None:
        for index in range(100):
            wakeups.arm([("Deployment", "ns", f"agent-{index}")])
        gc.collect()

    asyncio.run(main())
    assert len(wakeups) == 0
