"""Steering rollouts from outside the loop: undo, pause, resume, and a canary's promote,
pause and abort.

Steering records intent in the store (a pin, a canary intent) and wakes whoever acts on
it; it never calls into the loop. The undo target is decided from the store alone, so the
choice reads in one place and holds however long the history grows: the store answers
with one indexed query, never a capped list scanned in Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from controller.errors import Conflict, NotFound, Transient
from controller.reconciler import canary, drivers, interrupted
from controller.reconciler.agent_states import AgentStates, Failures
from controller.reconciler.placing import Placer
from controller.reconciler.recorder import Recorder
from controller.reconciler.status import AgentStatus, EnvironmentStatus
from controller.reconciler.target import Target
from controller.specs.model import Agent
from controller.store.records import Deployed, Pin, PinKind, Revision, Rollout, RolloutResult
from controller.store.sqlite import Store


class Steering:
    """`rollout undo`, `pause` and `resume` for one controller's environments."""

    def __init__(
        self,
        *,
        statuses: Mapping[str, EnvironmentStatus],
        store: Store,
        target: Target,
        driver: drivers.Driver,
        placer: Placer,
        recorder: Recorder,
        agent_states: AgentStates,
        failures: Failures,
        open_rollouts: interrupted.OpenRollouts,
        wake: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self.statuses = statuses
        self.store = store
        self.target = target
        self.driver = driver
        self.placer = placer
        self.recorder = recorder
        self.agent_states = agent_states
        self.failures = failures
        self.open_rollouts = open_rollouts
        self.wake = wake  # reconcile this environment again soon
        self.clock = clock

    def status_of(self, environment: str, agent: str) -> AgentStatus:
        status = self.statuses.get(environment)
        if status is None:
            known = ", ".join(sorted(self.statuses)) or "none"
            raise NotFound(f'environment "{environment}" not found (known: {known})')
        found = status.agents.get(agent)
        if found is None:
            known = ", ".join(sorted(status.agents)) or "none"
            raise NotFound(f'agent "{agent}" not found in {environment} (known: {known})')
        return found

    async def undo(
        self, environment: str, agent: str, to_revision: int | None, actor: str, reason: str
    ) -> Rollout:
        """Roll `agent` back to a recorded revision and pin it there until a new commit."""
        status = self.status_of(environment, agent)
        serving = self.target.running(environment).get(agent)
        chosen = undo_target(self.store, agent, environment, serving, to_revision)
        target_agent = await self.placer.commits.agent_at(chosen.commit, agent, chosen.version)
        if target_agent is None:
            raise Conflict(f"revision {chosen.number} can no longer be loaded from its commit")
        request = await self.driver.prepare(
            await self.placer.place(
                target_agent,
                environment,
                chosen.commit,
                chosen.branch,
                author=chosen.author,
                message=chosen.message,
            )
        )
        rollout = self.store.begin_rollout(
            agent=agent,
            environment=environment,
            from_version=serving,
            to_version=chosen.version,
            commit=chosen.commit,
            author=actor,
        )
        why = f"undo to revision {chosen.number} by {actor}" + (f": {reason}" if reason else "")
        self.recorder.event("Normal", "RollbackStarted", environment, agent, why)
        started = time.monotonic()
        try:
            result = await self.driver.deploy(
                request, float(target_agent.spec.rollout.progress_deadline_seconds)
            )
        except Transient:
            self.open_rollouts.add(rollout, interrupted.API_ERROR)  # the next sync closes it
            raise
        if not result.healthy:
            self.store.finish_rollout(rollout.id, RolloutResult.FAILED, result.message)
            self.recorder.rollout_finished(environment, agent, RolloutResult.FAILED, started)
            self.recorder.event("Warning", "RollbackFailed", environment, agent, result.message)
            raise Conflict(f"revision {chosen.number} did not turn healthy: {result.message}")
        self.store.finish_rollout(rollout.id, RolloutResult.HEALTHY, why)
        self.recorder.rollout_finished(environment, agent, RolloutResult.HEALTHY, started)
        self.store.set_deployed(
            Deployed(agent, environment, chosen.version, chosen.commit, chosen.branch, self.clock())
        )
        held = next((p for p in self.store.pins(environment) if p.agent == agent), None)
        self.store.pin(
            Pin(
                environment,
                agent,
                chosen.version,
                status.desired_version,
                actor,
                why,
                self.clock(),
                # An undo while paused stays a pause: only `resume` lifts it.
                held.kind if held is not None else PinKind.UNDO,
            )
        )
        self.failures.clear(environment, agent)
        self.recorder.event(
            "Normal",
            "RollbackSucceeded",
            environment,
            agent,
            f"revision {chosen.number} ({chosen.version}) is healthy and serving",
        )
        self.agent_states.refresh(self.statuses[environment], None, status.commit)
        return self.store.rollout(rollout.id)

    def pause(self, environment: str, agent: str, actor: str, reason: str) -> Pin:
        """Hold `agent` at what it serves now; syncing leaves it alone until resumed."""
        status = self.status_of(environment, agent)
        serving = self.target.running(environment).get(agent)
        if serving is None:
            raise Conflict(f"{agent} is not running in {environment}; nothing to pause")
        held = next((p for p in self.store.pins(environment) if p.agent == agent), None)
        if held is not None and held.kind is PinKind.PAUSE:
            raise Conflict(f"{agent} in {environment} is already paused ({held.reason})")
        # A deploy in flight would finish after the pin and serve another version than the
        # one the pause claims to hold (once its traffic has switched, the pin holds it).
        for moving in self.store.open_rollouts(environment):
            if (
                moving.agent == agent
                and moving.to_version != serving
                and not self.open_rollouts.holds(environment, agent)
            ):
                raise Conflict(
                    f"{agent} in {environment} is rolling out {moving.from_version} → "
                    f"{moving.to_version}; pause it once that rollout ends (shipyard rollout "
                    f"status {agent} -e {environment}), then undo if needed"
                )
        pin = Pin(
            environment,
            agent,
            serving,
            status.desired_version,
            actor,
            f"paused by {actor}" + (f": {reason}" if reason else ""),
            self.clock(),
            PinKind.PAUSE,
        )
        self.store.pin(pin)
        self.recorder.event("Normal", "Paused", environment, agent, pin.reason)
        self.agent_states.refresh(self.statuses[environment], None, status.commit)
        return pin

    def resume(self, environment: str, agent: str, actor: str) -> bool:
        """Lift a pause or an undo pin; the next sync brings the branch's version back."""
        self.status_of(environment, agent)
        lifted = self.store.unpin(environment, agent)
        if lifted:
            self.recorder.event("Normal", "Resumed", environment, agent, f"resumed by {actor}")
            self.wake(environment)
        return lifted

    def pins_in_force(self, environment: str, desired: dict[str, Agent]) -> dict[str, str]:
        """Agent → pinned version; a commit that changed an agent lifts its undo pin."""
        pinned: dict[str, str] = {}
        for pin in self.store.pins(environment):
            wanted = desired.get(pin.agent)
            lifts = pin.kind is PinKind.UNDO  # a pause holds until `rollout resume`
            if lifts and wanted is not None and wanted.version != pin.pinned_from:
                self.store.unpin(environment, pin.agent)
                self.recorder.event(
                    "Normal",
                    "Unpinned",
                    environment,
                    pin.agent,
                    f"pin on {pin.version} lifted: a commit changed {pin.agent}",
                )
                continue
            pinned[pin.agent] = pin.version
        return pinned


def undo_target(
    store: Store, agent: str, environment: str, serving: str | None, to_revision: int | None
) -> Revision:
    """The revision to roll `agent` back to.

    With `to_revision`, that one. Otherwise kubectl's "the revision before": the newest
    revision older than the one serving whose version differs from what serves, so a
    newer version that failed and was rolled back is never chosen.
    """
    if to_revision is not None:
        chosen = store.revision(agent, environment, to_revision)
        if chosen is None:
            newest = store.revisions(agent, environment, limit=1)
            known = f"1 to {newest[0].number}" if newest else "none"
            raise NotFound(
                f"revision {to_revision} of {agent} in {environment} not found (revisions: {known})"
            )
        return chosen
    current = store.revision_serving(agent, environment, serving) if serving is not None else None
    before = store.revision_before(
        agent, environment, current.number if current is not None else None, serving
    )
    if before is None:
        raise Conflict(f"{agent} in {environment} has no earlier revision to undo to")
    return before


def steer_canary(
    store: Store, book: canary.Book, environment: str, agent: str, *, intent: str, actor: str
) -> None:
    """Record `intent` (promote, promote-full, abort) for `agent`'s running canary and wake it.

    The canary's loop takes the intent at its next look, so the ask survives however
    busy the loop is; a canary that is not running is a clear 409, not a stored ask.
    """
    if intent not in canary.INTENTS:
        raise Conflict(f"unknown intent {intent!r} (one of {', '.join(canary.INTENTS)})")
    if not book.running(environment, agent):
        raise Conflict(
            f"{agent} in {environment} has no canary running "
            "(a canary runs while a strategy: Canary rollout walks its steps)"
        )
    progress = book.progress[environment, agent]
    if intent == canary.PAUSE and progress.held:
        raise Conflict(f"{agent}'s canary in {environment} is already paused ({progress.message})")
    store.record_intent(environment, agent, intent, actor)
    book.wake(environment, agent)
