"""The local target's (environment, agent) → process map, telling listeners of each change.

The router keeps its own host table and must hear of every switch of a slot: deploys,
removals, shutdown, and whatever later code assigns a slot. So the telling lives in the
map itself rather than beside each assignment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.targets.local.processes import AgentProcess

Slot = tuple[str, str]  # (environment, agent)
SlotListener = Callable[[Slot, AgentProcess | None], None]


class ServingSlots(dict[Slot, AgentProcess]):
    """A dict whose writes call every listener with the slot and its new process (or None)."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[SlotListener] = []

    def listen(self, listener: SlotListener) -> None:
        self._listeners.append(listener)

    def __setitem__(self, slot: Slot, process: AgentProcess) -> None:
        super().__setitem__(slot, process)
        self._tell(slot, process)

    def __delitem__(self, slot: Slot) -> None:
        super().__delitem__(slot)
        self._tell(slot, None)

    def pop(self, slot: Slot, *default: Any) -> Any:
        held = slot in self
        process = super().pop(slot, *default)
        if held:
            self._tell(slot, None)
        return process

    def clear(self) -> None:
        slots = list(self)
        super().clear()
        for slot in slots:
            self._tell(slot, None)

    def setdefault(self, slot: Slot, default: Any = None) -> Any:
        raise NotImplementedError("assign the slot, so that listeners hear of it")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("assign each slot, so that listeners hear of it")

    def popitem(self) -> tuple[Slot, AgentProcess]:
        raise NotImplementedError("pop a named slot, so that listeners hear of it")

    def _tell(self, slot: Slot, process: AgentProcess | None) -> None:
        for listener in self._listeners:
            listener(slot, process)
