"""Each agent's status line, rebuilt from what the target runs, the store and the failures.

The loop, steering and restore all change what an agent serves; each then asks here for
the environment's agents again, so "Healthy", "Pinned", "Failed", "Aborted" are decided
in one place. `Failures` remembers versions whose rollout failed, so the planner does not
try them again until a new commit changes the agent.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.reconciler import canary
from controller.reconciler.status import AgentStatus, EnvironmentStatus
from controller.reconciler.target import Target
from controller.specs.model import Agent
from controller.store.sqlite import Store


class Failures:
    """(environment, agent) → the version whose rollout failed."""

    def __init__(self) -> None:
        self._failed: dict[tuple[str, str], str] = {}

    def mark(self, environment: str, agent: str, version: str) -> None:
        self._failed[environment, agent] = version

    def clear(self, environment: str, agent: str) -> None:
        self._failed.pop((environment, agent), None)

    def get(self, environment: str, agent: str) -> str | None:
        return self._failed.get((environment, agent))

    def of(self, environment: str) -> dict[str, str]:
        return {
            agent: version for (env, agent), version in self._failed.items() if env == environment
        }

    def forget(self, environment: str) -> None:
        for key in [key for key in self._failed if key[0] == environment]:
            del self._failed[key]


class AgentStates:
    def __init__(
        self,
        target: Target,
        store: Store,
        failures: Failures,
        canaries: canary.Book,
        url: Callable[[str, str], str],
    ) -> None:
        self.target = target
        self.store = store
        self.failures = failures
        self.canaries = canaries
        self.url = url  # (agent, environment) → its URL

    def refresh(
        self, status: EnvironmentStatus, desired: dict[str, Agent] | None, sha: str | None
    ) -> None:
        """Rebuild `status.agents` (`desired` None: keep the versions wanted before)."""
        running = self.target.running(status.name)
        deployed = {record.agent: record for record in self.store.deployed(status.name)}
        pins = {pin.agent: pin for pin in self.store.pins(status.name)}
        names = set(running) | (set(desired) if desired is not None else set(status.agents))
        agents: dict[str, AgentStatus] = {}
        for name in sorted(names):
            previous = status.agents.get(name)
            wanted = (
                desired[name].version
                if desired is not None and name in desired
                else (previous.desired_version if previous else None)
            )
            serving = running.get(name)
            pin = pins.get(name)
            failed = self.failures.get(status.name, name)
            if pin is not None and serving == pin.version:
                state = "Pinned"
            elif serving is not None and serving == wanted:
                state = "Healthy"
            elif failed is not None:
                state = self.canaries.failed_state(status.name, name, failed)
            else:
                state = "Progressing" if wanted else "Removing"
            record = deployed.get(name)
            labels = (
                desired[name].spec.labels
                if desired is not None and name in desired
                else (previous.labels if previous else {})
            )
            message = (
                pin.reason
                if pin is not None and state == "Pinned"
                else previous.message
                if previous and state in ("Failed", "Aborted")
                else ""
            )
            commit = record.commit if record else None
            since = record.since if record and serving == record.version else None
            pinned_version = pin.version if pin is not None else None
            runtime = self.target.process(status.name, name) if serving else None
            if (
                previous is not None
                and (previous.version, previous.desired_version, previous.commit)
                == (serving, wanted, commit)
                and (previous.state, previous.message, previous.since, previous.pinned_version)
                == (state, message, since, pinned_version)
                and previous.runtime is runtime
                and previous.labels == labels
            ):
                # Nothing it is built from changed (its URL follows from its name and
                # whether it serves): a push that changes one agent of 1,000 rebuilds one.
                agents[name] = previous
                continue
            agents[name] = AgentStatus(
                name=name,
                version=serving,
                desired_version=wanted,
                commit=commit,
                url=self.url(name, status.name) if serving else None,
                state=state,
                message=message,
                labels=dict(labels),
                since=since,
                pinned_version=pinned_version,
                runtime=runtime,
            )
        status.agents = agents

    @staticmethod
    def say(status: EnvironmentStatus | None, agent: str, message: str) -> None:
        """Put `message` on `agent`'s line (a failed agent not listed yet gets one)."""
        if status is not None and agent in status.agents:
            status.agents[agent].message = message
        elif status is not None:
            status.agents[agent] = AgentStatus(agent, None, None, None, None, "Failed", message)
