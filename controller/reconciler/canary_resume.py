"""Where an interrupted canary had got to, read back from its rollout record.

A running canary's progress lives in the controller's memory, but every step it begins
and every steering action is appended to its rollout record
(`Store.record_rollout_step`). When the controller restarts mid-canary the rollout is
deployed again under the same record (`interrupted`); this reads that history so the
canary carries on at the step it had reached — with the weight it had, what was left of
a timed pause and a person's hold — instead of starting over from its first step (Argo
Rollouts keeps `currentStepIndex` in the Rollout's status for the same reason).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STEP = "step"
ENDED = "ended"  # written once the run decided (promote or abort), before the target acts
_HOLD = "pause"
_RELEASES = ("resume", "promote")


@dataclass(frozen=True)
class Reached:
    """The last step an earlier run of the canary began."""

    index: int  # of that step in `rollout.steps`, from 0
    weight: int  # the canary's share of requests when it began
    began_at: float  # when it began, seconds since the epoch
    held_by: str | None  # who `rollout pause`d it, if nobody resumed or promoted since

    def pause_left(self, pause_seconds: int, now: float | None = None) -> float:
        """What remains of a timed pause begun before the restart (never below zero)."""
        now = time.time() if now is None else now
        return max(0.0, self.began_at + pause_seconds - now)


def ended_line(ending: str, message: str) -> str:
    """The `what` of an `ended` line: how the run ended and why."""
    return f"{ending}: {message}"


def decided(history: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(ending, message) if an earlier run had already decided how the canary ends (the
    target's promote or abort was interrupted): the resumed run carries that out rather
    than walking the steps again, so a failed analysis or a person's abort stands."""
    for entry in reversed(history):
        if entry.get("kind") == ENDED:
            ending, _, message = str(entry.get("what", "")).partition(": ")
            return ending, message
    return None


def reached(history: Sequence[Mapping[str, Any]], steps: int) -> Reached | None:
    """Where the rollout whose record holds `history` had got to; None if it began no
    step (it had not passed its gate, or never ran)."""
    begun = [entry for entry in history if entry.get("kind") == STEP]
    if not begun or steps <= 0:
        return None
    held_by: str | None = None
    for entry in history:
        if entry.get("kind") == _HOLD:
            held_by = str(entry.get("what", "")).removeprefix("by ") or "someone"
        elif entry.get("kind") in _RELEASES:
            held_by = None
    last = begun[-1]
    return Reached(
        index=min(max(int(last.get("step", 1)) - 1, 0), steps - 1),
        weight=int(last.get("weight", 0)),
        began_at=float(last.get("at", 0.0)),
        held_by=held_by,
    )
