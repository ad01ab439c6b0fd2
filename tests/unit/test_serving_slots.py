"""The local target's slot map tells its listeners of every change, whoever makes it.

The router's host table is kept by these notifications, so a write that did not notify
would leave a route pointing at a stopped process, or no route to a new one.
"""

from __future__ import annotations

from typing import cast

import pytest

from controller.targets.local.processes import AgentProcess
from controller.targets.local.serving_slots import ServingSlots, Slot

OLD, NEW = cast(AgentProcess, object()), cast(AgentProcess, object())


def test_every_write_is_told_in_order() -> None:
    slots = ServingSlots()
    heard: list[tuple[Slot, AgentProcess | None]] = []
    slots.listen(lambda slot, process: heard.append((slot, process)))
    slots[("production", "a")] = OLD
    slots[("production", "a")] = NEW
    slots[("preview-x", "b")] = OLD
    assert slots.pop(("production", "a")) is NEW
    assert slots.pop(("production", "missing"), None) is None  # nothing changed: not told
    del slots[("preview-x", "b")]
    slots[("production", "c")] = OLD
    slots.clear()
    assert heard == [
        (("production", "a"), OLD),
        (("production", "a"), NEW),
        (("preview-x", "b"), OLD),
        (("production", "a"), None),
        (("preview-x", "b"), None),
        (("production", "c"), OLD),
        (("production", "c"), None),
    ]
    assert slots == {}


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda s: s.setdefault(("e", "a"), OLD), id="setdefault"),
        pytest.param(lambda s: s.update({("e", "a"): OLD}), id="update"),
        pytest.param(lambda s: s.popitem(), id="popitem"),
    ],
)
def test_writes_that_could_skip_the_listeners_are_refused(write: object) -> None:
    slots = ServingSlots()
    slots[("e", "a")] = NEW
    with pytest.raises(NotImplementedError):
        write(slots)  # type: ignore[operator]
    assert slots == {("e", "a"): NEW}
