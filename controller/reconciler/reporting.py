"""What the reconciler tells the metrics: the state snapshot per scrape, and rollout ends.

Kept apart from the loop itself so the loop only carries one-line calls into here.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from controller.metrics.state import State, VersionInfo
from controller.reconciler.status import EnvironmentStatus, Outcome
from controller.store.records import RolloutResult
from preview import naming

if TYPE_CHECKING:
    from controller.reconciler.controller import Controller


def state(controller: Controller) -> State:
    """The controller as the metrics see it right now (called at every scrape)."""
    versions = []
    canaries = [canary.serving for canary in controller.target.canaries()]
    for serving in [*controller.target.serving(), *canaries]:
        process = controller.target.process(serving.environment, serving.agent)
        status = controller.statuses.get(serving.environment)
        versions.append(
            VersionInfo(
                agent=serving.agent,
                environment=serving.environment,
                version=serving.version,
                commit=serving.commit or (process.spec.commit if process is not None else ""),
                branch=status.branch if status is not None else "",
            )
        )
    statuses = dict(controller.statuses)
    agents = {(name, agent) for name, status in statuses.items() for agent in status.agents}
    agents |= {(version.environment, version.agent) for version in versions}
    previews = Counter(
        _preview_state(status) for name, status in statuses.items() if name != naming.PRODUCTION
    )
    records = controller.store.environment_records()
    previews["Retired"] += sum(
        1
        for name, record in records.items()
        if record.retired_commit is not None and name not in statuses
    )
    return State(
        versions=tuple(versions),
        environments=frozenset(statuses) | frozenset(v.environment for v in versions),
        agents=frozenset(agents),
        manifest_errors={name: len(status.problems) for name, status in statuses.items()},
        previews=dict(previews),
        eval_cases=controller.evaluation.case_counts(),
    )


def _preview_state(status: EnvironmentStatus) -> str:
    def holds(kind: str) -> bool:
        condition = status.conditions.get(kind)
        return condition is not None and condition.status

    if holds("Stalled"):
        return "Stalled"
    if holds("Ready"):
        return "Ready"
    if holds("Reconciling") or "Ready" not in status.conditions:
        return "Progressing"
    return "Failed"


def reconciled(controller: Controller, environment: str, outcome: Outcome) -> None:
    """One reconcile of `environment` ended with `outcome`."""
    if outcome is Outcome.READY:
        controller.metrics.synced(environment, controller.clock())


def rollout_finished(
    controller: Controller,
    environment: str,
    agent: str,
    result: RolloutResult,
    started: float,
    *,
    commit: str | None = None,
) -> None:
    """A rollout begun at `started` (`time.monotonic`) ended with `result`.

    With the `commit` it deployed from, a healthy rollout also counts as that commit
    going live: the time since the controller first saw it pushed (the environment
    record's `last_push_at`), if the environment still points at that commit.
    """
    seconds = time.monotonic() - started
    controller.metrics.rollout_finished(agent, environment, result.value, seconds)
    if result is not RolloutResult.HEALTHY or commit is None:
        return
    # One row, not every environment's: this runs once per rollout of every agent.
    record = controller.store.environment_record(environment)
    if record is not None and record.commit == commit:
        kind = "production" if environment == naming.PRODUCTION else "preview"
        controller.metrics.commit_live(kind, controller.clock() - record.last_push_at)
