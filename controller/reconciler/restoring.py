"""After a restart, start again what ran before: no new rollouts, no new revisions.

Only for targets whose agents die with the controller (local processes); a cluster keeps
running everything. What ran is read from the store, each version from its own commit.
"""

from __future__ import annotations

import logging

from controller.errors import ShipyardError
from controller.reconciler import drivers, launching
from controller.reconciler.agent_states import AgentStates
from controller.reconciler.placing import Placer
from controller.reconciler.recorder import Recorder
from controller.reconciler.status import EnvironmentStatus
from controller.store.records import Deployed
from controller.store.sqlite import Store

log = logging.getLogger("shipyard.reconciler")


async def restore(
    *,
    store: Store,
    driver: drivers.Driver,
    placer: Placer,
    statuses: dict[str, EnvironmentStatus],
    agent_states: AgentStates,
    recorder: Recorder,
) -> None:
    by_commit: dict[tuple[str, str], list[Deployed]] = {}
    for record in store.deployed():
        by_commit.setdefault((record.environment, record.commit), []).append(record)
    for (environment, sha), records in sorted(by_commit.items()):
        try:
            loaded = await placer.commits.load(sha)
            await placer.commits.checkout(sha)
        except ShipyardError as error:
            log.warning("cannot restore %s at %s: %s", environment, sha[:12], error)
            continue
        agents = {agent.name: agent for agent in loaded.result.agents}
        for record in records:
            agent = agents.get(record.agent)
            if agent is None or agent.version != record.version:
                continue
            try:
                request = await driver.prepare(
                    await placer.place(agent, environment, sha, record.branch)
                )
            except launching.NotLaunchable:
                continue
            deadline = float(agent.spec.rollout.progress_deadline_seconds)
            result = await driver.restore(request, deadline)
            if not result.healthy:
                recorder.event(
                    "Warning",
                    "RestoreFailed",
                    environment,
                    agent.name,
                    f"{agent.version} did not turn healthy after restart",
                )
        status = statuses.setdefault(environment, EnvironmentStatus(environment, ""))
        status.branch = records[0].branch
        agent_states.refresh(status, None, sha)
