"""A canary rollout: steps, weights, analysis, promote or abort (local or Kubernetes target).

The new version starts beside the stable one and takes the share of requests each
`setWeight` step sets; pauses wait for a duration or for `rollout promote`; the rollout-wide
analysis judges the canary every interval from the router's per-version samples, and an
analysis step holds until its checks pass. A failed check, or `rollout abort`, sends all
traffic back to stable and stops the canary. Steering arrives as intents in the store
(`steering.py` records them and wakes this loop through the book), never as calls into
the loop. `rollout pause` holds the canary at its current step (weight, analysis and
all) until `rollout resume`; each step and each steering action is appended to the
rollout's record, its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from controller.metrics.windows import RequestWindows, Sample
from controller.reconciler import canary_analysis, canary_resume, prometheus_analysis
from controller.reconciler.canary_analysis import Result, Verdict
from controller.reconciler.prometheus_analysis import Prometheus, QueryJudge
from controller.reconciler.target import CanaryRequest, CanaryTarget
from controller.specs.model import Analysis, CanaryStep, RolloutSettings
from controller.store.sqlite import Store

PROMOTE = "promote"
PROMOTE_FULL = "promote-full"
ABORT = "abort"
PAUSE = "pause"
RESUME = "resume"
INTENTS = (PROMOTE, PROMOTE_FULL, ABORT, PAUSE, RESUME)
MAX_VERDICTS = 20
DEFAULT_INTERVAL = 10.0  # checking for intents and timed pauses without an analysis


class Ending(enum.StrEnum):
    PROMOTED = "Promoted"
    ABORTED = "Aborted"
    UNHEALTHY = "Unhealthy"  # never turned healthy: the rolling update's failure


@dataclass(frozen=True)
class Ended:
    ending: Ending
    message: str


@dataclass
class Progress:
    """Where one running canary stands, for `rollout status`, describe and `get -o wide`."""

    stable: str
    canary: str
    steps: int
    step: int = 0
    weight: int = 0
    phase: str = "Progressing"  # Progressing, Paused, Promoted, Aborted
    message: str = ""
    held: bool = False  # paused at its step by `rollout pause` (not a pause step)
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stable": self.stable,
            "canary": self.canary,
            "step": self.step,
            "steps": self.steps,
            "weight": self.weight,
            "phase": self.phase,
            "message": self.message,
            "held": self.held,
            "verdicts": list(self.verdicts),
        }


class Book:
    """The running canaries' progress, and a wake-up per canary for steering."""

    def __init__(self) -> None:
        self.progress: dict[tuple[str, str], Progress] = {}
        self._wake: dict[tuple[str, str], asyncio.Event] = {}

    def attach(self, slot: tuple[str, str], progress: Progress, wake: asyncio.Event) -> None:
        self.progress[slot] = progress
        self._wake[slot] = wake

    def detach(self, slot: tuple[str, str]) -> None:
        self._wake.pop(slot, None)

    def wake(self, environment: str, agent: str) -> None:
        event = self._wake.get((environment, agent))
        if event is not None:
            event.set()

    def running(self, environment: str, agent: str) -> bool:
        progress = self.progress.get((environment, agent))
        return progress is not None and progress.phase in ("Progressing", "Paused")

    def running_in(self, environment: str) -> bool:
        """Some canary of `environment` is under way (between its steps and its end)."""
        return any(self.running(*slot) for slot in self.progress if slot[0] == environment)

    def held(self, environment: str, agent: str) -> bool:
        """A running canary that `rollout pause` holds at its step (`resume` walks on)."""
        progress = self.progress.get((environment, agent))
        return progress is not None and progress.held and self.running(environment, agent)

    def failed_state(self, environment: str, agent: str, version: str) -> str:
        """`Aborted` when `version` failed as an aborted canary, else `Failed`."""
        progress = self.progress.get((environment, agent))
        aborted = progress is not None and progress.canary == version
        return (
            "Aborted"
            if progress is not None and aborted and progress.phase == "Aborted"
            else "Failed"
        )

    def as_dict(self, environment: str, agent: str) -> dict[str, Any] | None:
        progress = self.progress.get((environment, agent))
        return progress.as_dict() if progress is not None else None


def _ended_before(history: tuple[dict[str, Any], ...]) -> Ended | None:
    """How an interrupted earlier run of the rollout had decided to end, if it had."""
    found = canary_resume.decided(history)
    if found is None:
        return None
    ending, message = found
    try:
        return Ended(Ending(ending), message)
    except ValueError:
        return None  # not a line this code wrote: walk the steps as if undecided


# Run once the canary is healthy, before its first step: Failed aborts (the eval gate).
Gate = Callable[[], Awaitable[Verdict]]


@dataclass
class _Judge:
    """One analysis and the requests it has not judged yet."""

    analysis: Analysis
    name: str
    pending: Sample = field(default_factory=lambda: Sample(0, 0, ()))
    due: float = 0.0
    last: Verdict | None = None
    queries: QueryJudge | None = None

    def __post_init__(self) -> None:
        if self.analysis.queries:
            self.queries = QueryJudge(self.analysis.queries)


class CanaryRun:
    def __init__(
        self,
        *,
        target: CanaryTarget,
        store: Store,
        book: Book,
        windows: RequestWindows,
        launch: CanaryRequest,
        settings: RolloutSettings,
        stable: str,
        rollout_id: int | None = None,
        prometheus: Prometheus | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.target = target
        self.store = store
        self.book = book
        self.windows = windows
        self.launch = launch
        self.settings = settings
        self.slot = (launch.environment, launch.agent)
        self.key = (launch.agent, launch.environment, launch.version)
        self.progress = Progress(stable=stable, canary=launch.version, steps=len(settings.steps))
        self.rollout_id = rollout_id
        self.prometheus = prometheus
        self.gate = gate
        self.wake = asyncio.Event()
        self.judges: list[_Judge] = []
        self._until: float | None = None  # when the current wait ends (None: on promote)
        self._held_since: float | None = None  # paused by a person since
        self._hold_at_wait: str | None = None  # a hold from before a restart, by whom

    async def run(self, deadline_seconds: float) -> Ended:
        environment, agent = self.slot
        started = await self.target.start_canary(
            self.launch, deadline_seconds, self.settings.sticky_header
        )
        if not started.healthy:
            return Ended(Ending.UNHEALTHY, started.message)
        self.store.take_intent(environment, agent)  # an ask left from an earlier rollout
        self.book.attach(self.slot, self.progress, self.wake)
        self.windows.watch(self.key)
        try:
            if self.settings.analysis is not None:
                self.judges.append(_Judge(self.settings.analysis, "analysis"))
            history = self.store.rollout(self.rollout_id).steps if self.rollout_id else ()
            ended = _ended_before(history)
            if ended is None:
                resumed = canary_resume.reached(history, len(self.settings.steps))
                # Steps begin only once the gate passed: a resumed canary does not sit it
                # again.
                gated = self.gate is not None and resumed is None
                ended = await self._gate() if gated else None
                if ended is None:
                    ended = await self._steps(resumed)
                # Kept before the target acts on it: if that is interrupted, the resumed
                # run carries out this decision instead of walking the steps again.
                self._history(
                    canary_resume.ENDED,
                    canary_resume.ended_line(ended.ending.value, ended.message),
                )
        except BaseException as error:
            self.progress.phase = Ending.ABORTED.value  # no longer running, whatever comes
            self.progress.message = f"interrupted: {error!r}"
            await self.target.abort_canary(environment, agent)
            raise
        finally:
            self.windows.unwatch(self.key)
            self.book.detach(self.slot)
        if ended.ending is Ending.PROMOTED:
            self._set_weight(100)
            await self.target.promote_canary(environment, agent)
        else:
            await self.target.abort_canary(environment, agent)
            self.progress.weight = 0
        self.progress.phase = ended.ending.value
        self.progress.message = ended.message
        return ended

    async def _gate(self) -> Ended | None:
        assert self.gate is not None
        self.progress.message = "running the eval suites on the canary"
        verdict = await self.gate()
        self._remember("evals", verdict)
        self._history("evals", f"{verdict.result.value}: {verdict.message}")
        if verdict.result is Result.FAILED:
            return Ended(Ending.ABORTED, f"evals failed: {verdict.message}")
        return None

    async def _steps(self, resumed: canary_resume.Reached | None = None) -> Ended:
        first = resumed.index if resumed is not None else 0
        for index, step in enumerate(self.settings.steps[first:], first):
            self.progress.step = index + 1
            pause_left: float | None = None
            if resumed is not None and index == first:
                pause_left = self._resume(step, resumed)
            else:
                self._record_step(step)
            ended = await self._step(step, pause_left)
            if ended is not None:
                return ended
        return Ended(Ending.PROMOTED, "every step passed")

    def _resume(self, step: CanaryStep, resumed: canary_resume.Reached) -> float | None:
        """Stand where the interrupted run stood: its weight, its hold; what is left of
        its timed pause (None for any other step)."""
        self._set_weight(resumed.weight)
        where = f"step {self.progress.step}/{self.progress.steps}, weight {resumed.weight}%"
        self._history("resumed", f"at {where} after a controller restart")
        self.store.record_event(
            type="Normal",
            reason="CanaryResumed",
            message=f"{self.launch.version} resumed at {where} after a controller restart",
            environment=self.slot[0],
            agent=self.slot[1],
        )
        self._hold_at_wait = resumed.held_by  # held once the step has said what it does
        if step.pause and step.pause_seconds is not None:
            return resumed.pause_left(step.pause_seconds)
        return None

    async def _step(self, step: CanaryStep, pause_left: float | None = None) -> Ended | None:
        if step.set_weight is not None:
            self._set_weight(step.set_weight)
            self.progress.message = f"weight {step.set_weight}%"
            return await self._wait(0.0)
        if step.pause:
            if step.pause_seconds is None:
                self.progress.phase = "Paused"
                self.progress.message = "paused until `shipyard rollout promote`"
                ended = await self._wait(None)
            else:
                seconds = float(step.pause_seconds) if pause_left is None else pause_left
                self.progress.message = f"pausing {seconds:g}s"
                ended = await self._wait(seconds)
            self.progress.phase = "Progressing"
            return ended
        assert step.analysis is not None
        judge = _Judge(step.analysis, f"step {self.progress.step} analysis")
        self.judges.append(judge)
        self.progress.message = "analysing"
        try:
            while True:
                ended = await self._wait(step.analysis.interval_seconds)
                if ended is not None or (judge.last and judge.last.result is Result.PASSED):
                    return ended
                if self._promoted_past:
                    return None
        finally:
            self.judges.remove(judge)

    _promoted_past = False

    async def _wait(self, seconds: float | None) -> Ended | None:
        """Wait `seconds` (None: until promoted), judging and steering meanwhile.

        Returns how the rollout ended, if it did; None to go on with the next step.
        """
        self._promoted_past = False
        self._until = None if seconds is None else time.monotonic() + seconds
        if self._hold_at_wait is not None:
            self._hold(self._hold_at_wait)
            self._hold_at_wait = None
        while True:
            self.wake.clear()  # before looking: an intent recorded after this wakes the wait
            ended = self._steer()
            if ended is not None or self._promoted_past:
                return ended
            ended = await self._judge_due()
            if ended is not None:
                return ended
            now = time.monotonic()
            until = None if self._held_since is not None else self._until
            if until is not None and now >= until:
                return None
            next_due = min((judge.due for judge in self.judges), default=now + DEFAULT_INTERVAL)
            timeout = max(0.05, min(next_due, until if until is not None else next_due) - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)

    def _steer(self) -> Ended | None:
        asked = self.store.take_intent(*self.slot)
        if asked is None:
            return None
        intent, actor = asked
        self._history(intent, f"by {actor}")
        if intent == ABORT:
            return Ended(Ending.ABORTED, f"aborted by {actor}")
        if intent == PROMOTE_FULL:
            return Ended(Ending.PROMOTED, f"promoted in full by {actor}")
        if intent == PAUSE:
            self._hold(actor)
            return None
        resumed_from = self.progress.message
        self._release()
        if intent == RESUME:
            self.progress.message = f"resumed by {actor} ({resumed_from})"
            return None
        self._promoted_past = True  # PROMOTE: past the current pause or analysis step
        self.progress.message = f"promoted past step {self.progress.step} by {actor}"
        return None

    def _hold(self, actor: str) -> None:
        """Stay at this step (its weight, its analysis) until resumed or promoted."""
        if self._held_since is None:
            self._held_since = time.monotonic()
        self.progress.held = True
        self.progress.phase = "Paused"
        step = f"step {self.progress.step}/{self.progress.steps}, weight {self.progress.weight}%"
        self.progress.message = f"paused at {step} by {actor}"

    def _release(self) -> None:
        """End a hold; a timed pause gets back the time it had left."""
        if self._held_since is None:
            return
        if self._until is not None:
            self._until += time.monotonic() - self._held_since
        self._held_since = None
        self.progress.held = False
        self.progress.phase = "Progressing"

    async def _judge_due(self) -> Ended | None:
        now = time.monotonic()
        for judge in self.judges:
            if judge.due == 0.0:
                judge.due = now + judge.analysis.interval_seconds
        due = [judge for judge in self.judges if now >= judge.due]
        if not due:
            return None
        fresh = self.windows.take(self.key)
        for judge in self.judges:  # every analysis sees every request once
            judge.pending = canary_analysis.merged(judge.pending, fresh)
        for judge in due:
            judge.due = now + judge.analysis.interval_seconds
            verdicts = []
            if judge.analysis.checks_requests:
                verdicts.append(canary_analysis.judge(judge.analysis, judge.pending))
                if verdicts[0].result is not Result.INCONCLUSIVE:
                    judge.pending = Sample(0, 0, ())
            if judge.queries is not None:
                verdicts.append(await judge.queries.judge(self.prometheus, self._variables(judge)))
            verdict = prometheus_analysis.combine(verdicts)
            judge.last = verdict
            self._remember(judge.name, verdict)
            if verdict.result is Result.FAILED:
                return Ended(Ending.ABORTED, f"{judge.name} failed: {verdict.message}")
        return None

    def _record_step(self, step: CanaryStep) -> None:
        """Each step in the agent's events: the rollout's history, step by step."""
        if step.set_weight is not None:
            what = f"weight {step.set_weight}%"
        elif step.pause and step.pause_seconds is not None:
            what = f"pause {step.pause_seconds}s"
        elif step.pause:
            what = "pause until `shipyard rollout promote`"
        else:
            what = "analysis"
        environment, agent = self.slot
        self.store.record_event(
            type="Normal",
            reason="CanaryStep",
            message=(
                f"{self.launch.version} step {self.progress.step}/{self.progress.steps}: {what}"
            ),
            environment=environment,
            agent=agent,
        )
        self._history("step", what)

    def _history(self, kind: str, what: str) -> None:
        """One line of the rollout record's steps: a step begun, or a person's steering."""
        if self.rollout_id is None:
            return
        self.store.record_rollout_step(
            self.rollout_id,
            {
                "at": time.time(),
                "kind": kind,
                "step": self.progress.step,
                "steps": self.progress.steps,
                "weight": self.progress.weight,
                "what": what,
            },
        )

    def _variables(self, judge: _Judge) -> dict[str, str]:
        environment, agent = self.slot
        return {
            "agent": agent,
            "environment": environment,
            "canary": self.launch.version,
            "stable": self.progress.stable,
            "interval": f"{judge.analysis.interval_seconds}s",
        }

    def _remember(self, name: str, verdict: Verdict) -> None:
        self.progress.verdicts.append({"analysis": name, "at": time.time(), **verdict.as_dict()})
        del self.progress.verdicts[:-MAX_VERDICTS]

    def _set_weight(self, weight: int) -> None:
        self.progress.weight = weight
        self.target.set_canary_weight(*self.slot, weight)
