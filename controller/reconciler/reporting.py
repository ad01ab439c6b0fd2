"""The reconciler's state as the metrics see it, computed at every scrape.

It reads the target, the environments' statuses and the store, each handed in: nothing
here knows the loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from controller.metrics.state import State, VersionInfo
from controller.reconciler.status import EnvironmentStatus
from controller.reconciler.target import Target
from controller.store.sqlite import Store
from preview import naming


def state(
    target: Target,
    statuses: Mapping[str, EnvironmentStatus],
    store: Store,
    eval_cases: dict[tuple[str, str, str, str], int],
) -> State:
    """What runs, per version and environment, and how the previews stand."""
    versions = []
    canaries = [canary.serving for canary in target.canaries()]
    for serving in [*target.serving(), *canaries]:
        process = target.process(serving.environment, serving.agent)
        status = statuses.get(serving.environment)
        versions.append(
            VersionInfo(
                agent=serving.agent,
                environment=serving.environment,
                version=serving.version,
                commit=serving.commit or (process.spec.commit if process is not None else ""),
                branch=status.branch if status is not None else "",
            )
        )
    statuses = dict(statuses)
    agents = {(name, agent) for name, status in statuses.items() for agent in status.agents}
    agents |= {(version.environment, version.agent) for version in versions}
    previews = Counter(
        _preview_state(status) for name, status in statuses.items() if name != naming.PRODUCTION
    )
    records = store.environment_records()
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
        eval_cases=eval_cases,
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
