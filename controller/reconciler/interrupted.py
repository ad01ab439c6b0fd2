"""Rollouts nobody is working on any more: resumed under the same record, or closed.

A rollout record says Progressing from `begin_rollout` until a health verdict closes it.
Two things leave one open with no deploy in flight: the controller died mid-rollout (the
next process finds the record in the store), or the target's API failed beyond its
client's retries (no verdict: the environment retries with backoff). Either way the
record must end. At the environment's next reconcile, `resume` shows the planner every
such rollout that is still wanted as not yet done, so it is deployed again and
`begin_rollout` hands back the same record; a Deployment that finished meanwhile passes
its health check at once, one that is stuck fails it and is rolled back. Records the
environment no longer wants (the branch moved on, the agent went, a person paused it)
are closed as Superseded, saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from controller.errors import ShipyardError
from controller.reconciler import drivers, launching
from controller.reconciler.placing import Placer
from controller.reconciler.recorder import Recorder
from controller.specs.model import Agent
from controller.store.records import Rollout, RolloutResult
from controller.store.sqlite import Store

log = logging.getLogger("shipyard.reconciler")

RESTART = "a controller restart"
API_ERROR = "a transient error"


@dataclass(frozen=True)
class LeftOpen:
    rollout: Rollout
    cause: str  # RESTART or API_ERROR


@dataclass
class OpenRollouts:
    """Open rollouts with no deploy in flight, per environment and agent."""

    _by_environment: dict[str, dict[str, LeftOpen]] = field(default_factory=dict)

    def adopt(self, store: Store) -> None:
        """At start-up: every record still Progressing was left so by the last process."""
        for rollout in store.open_rollouts():
            self.add(rollout, RESTART)

    def add(self, rollout: Rollout, cause: str) -> None:
        self._by_environment.setdefault(rollout.environment, {})[rollout.agent] = LeftOpen(
            rollout, cause
        )

    def holds(self, environment: str, agent: str) -> bool:
        """Whether the open rollout of `agent` is one nobody works on (vs. a deploy in flight)."""
        return agent in self._by_environment.get(environment, {})

    def take(self, environment: str) -> dict[str, LeftOpen]:
        return self._by_environment.pop(environment, {})

    def __len__(self) -> int:
        return sum(len(agents) for agents in self._by_environment.values())


class Resumer:
    """Resumes or closes an environment's open rollouts, with what that takes."""

    def __init__(
        self,
        book: OpenRollouts,
        *,
        store: Store,
        recorder: Recorder,
        driver: drivers.Driver,
        placer: Placer,
    ) -> None:
        self.book = book
        self.store = store
        self.recorder = recorder
        self.driver = driver
        self.placer = placer

    async def resume(
        self, environment: str, desired: dict[str, Agent], running: dict[str, str]
    ) -> dict[str, str]:
        """`running` as the planner must see it: open rollouts still wanted are not done.

        The others are closed as Superseded. Call after the target was refreshed and before
        planning, from the environment's own reconcile (never while its deploys run).
        """
        left = self.book.take(environment)
        if not left:
            return running
        still_open = {rollout.id for rollout in self.store.open_rollouts(environment)}
        pins = {pin.agent for pin in self.store.pins(environment)}
        planned = dict(running)
        for agent, entry in sorted(left.items()):
            rollout = entry.rollout
            if rollout.id not in still_open:
                continue
            wanted = desired.get(agent)
            why = _unwanted(rollout, wanted, agent in pins, environment)
            if why is not None:
                reason = f"interrupted by {entry.cause} and not resumed: {why}"
                self.store.finish_rollout(rollout.id, RolloutResult.SUPERSEDED, reason)
                self.recorder.event("Normal", "RolloutSuperseded", environment, agent, reason)
                continue
            if entry.cause == RESTART:
                await self._recall_previous(rollout)
            self.recorder.event(
                "Normal",
                "RolloutResumed",
                environment,
                agent,
                f"resuming the rollout of {rollout.to_version} interrupted by {entry.cause}",
            )
            # Whatever the target reports (a Deployment already carrying the new version's
            # label), the version is not serving until the health check says so.
            if rollout.from_version is None:
                planned.pop(agent, None)
            else:
                planned[agent] = rollout.from_version
        return planned

    def close(self, environment: str, why: str) -> None:
        """Close every open rollout of an environment that is going away."""
        self.book.take(environment)
        for rollout in self.store.open_rollouts(environment):
            reason = f"not finished: {why}"
            self.store.finish_rollout(rollout.id, RolloutResult.SUPERSEDED, reason)

    async def _recall_previous(self, rollout: Rollout) -> None:
        """Tell a target that lost its memory in the restart what to roll back to.

        The local target restarted the previous version from the store already; a cluster
        target knows only what it read back, not the objects of the version before.
        """
        if rollout.from_version is None or self.driver.restores_from_store:
            return
        revisions = self.store.revisions(rollout.agent, rollout.environment)
        previous = next((r for r in reversed(revisions) if r.version == rollout.from_version), None)
        if previous is None:
            return
        try:
            agent = await self.placer.commits.agent_at(
                previous.commit, rollout.agent, previous.version
            )
            if agent is None:
                return
            request = await self.driver.prepare(
                await self.placer.place(
                    agent,
                    rollout.environment,
                    previous.commit,
                    previous.branch,
                    author=previous.author,
                    message=previous.message,
                )
            )
        except (ShipyardError, launching.NotLaunchable) as error:
            log.warning(
                "cannot recall %s %s to roll back to: %s",
                rollout.agent,
                rollout.from_version,
                error,
            )
            return
        self.driver.recall(request)


def _unwanted(rollout: Rollout, wanted: Agent | None, pinned: bool, environment: str) -> str | None:
    if pinned:
        return f"{rollout.agent} is pinned in {environment}"
    if wanted is None:
        return f"{environment} no longer declares {rollout.agent}"
    if wanted.version != rollout.to_version:
        return f"{environment} now wants {rollout.agent} {wanted.version}"
    return None
