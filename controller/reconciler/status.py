"""Status as people and tools read it: conditions per environment, state per agent.

Shaped after Kubernetes conditions (`type`, `status`, `reason`, `message`,
`lastTransitionTime`) so `Ready`, `Reconciling` and `Stalled` mean what a Flux or
kubectl user expects.

An agent's status is written when its environment reconciles, but a process can crash
any time after. So an agent on the local target also carries its live `Runtime` (the
supervised process): `ready` and `state` are read from it at the moment someone asks,
and a promoted version that crash-loops reads `ready: false`, `CrashLoopBackOff`, with
its restart count and last exit, until it serves again. The reconciler itself waits on
`rolled_out` (the desired version is in place), which a later crash does not undo.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

_SERVING_STATES = ("Healthy", "Pinned")  # states a live process may override


class Outcome(enum.StrEnum):
    """How one reconcile ended, which decides when the next one runs."""

    READY = "Ready"  # converged; next run on change
    STALLED = "Stalled"  # needs a human (invalid manifests); no retry until input changes
    WAITING = "Waiting"  # expected to resolve (a rollout failed its health gate)
    TRANSIENT = "Transient"  # a hiccup (git, the target); retry with backoff


@dataclass
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""
    last_transition: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": _iso(self.last_transition),
        }


class Runtime(Protocol):
    """The live process behind a serving agent (`targets.local.processes.AgentProcess`)."""

    @property
    def state(self) -> str: ...

    @property
    def restarts(self) -> int: ...

    @property
    def last_exit(self) -> str | None: ...

    @property
    def backoff_until(self) -> float | None: ...


@dataclass
class AgentStatus:
    name: str
    version: str | None  # serving now
    desired_version: str | None
    commit: str | None
    url: str | None
    state: str  # Healthy, Progressing, Failed, Pinned, ... as of the last reconcile
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    since: float | None = None  # when the serving version started serving
    pinned_version: str | None = None  # held here by `rollout undo` or `rollout pause`
    runtime: Runtime | None = field(default=None, repr=False, compare=False)

    @property
    def rolled_out(self) -> bool:
        """The version it should serve is in place: the pinned version while pinned, else
        the branch's; a later crash does not change that."""
        wanted = self.pinned_version or self.desired_version
        return self.version is not None and self.version == wanted

    @property
    def ready(self) -> bool:
        """Rolled out and, where a live process serves it, answering its health check now."""
        return self.rolled_out and (self.runtime is None or self.runtime.state == "Healthy")

    @property
    def live_state(self) -> str:
        """`state`, unless the serving process says otherwise now (CrashLoopBackOff, ...)."""
        runtime = self.runtime
        if runtime is None or self.version is None or self.state not in _SERVING_STATES:
            return self.state
        return self.state if runtime.state == "Healthy" else str(runtime.state)

    def as_dict(self) -> dict[str, Any]:
        state = self.live_state
        runtime = self.runtime
        message = self.message
        if state != self.state and runtime is not None:
            message = _runtime_message(runtime)
        return {
            "name": self.name,
            "version": self.version,
            "desiredVersion": self.desired_version,
            "commit": self.commit,
            "url": self.url,
            "ready": self.ready,
            "state": state,
            "message": message,
            "labels": self.labels,
            "since": self.since,
            "pinnedVersion": self.pinned_version,
            "restarts": runtime.restarts if runtime is not None else None,
            "lastExit": runtime.last_exit if runtime is not None else None,
        }


def _runtime_message(runtime: Runtime) -> str:
    restarts = f"restarted {runtime.restarts} time{'s' if runtime.restarts != 1 else ''}"
    last = f"last exit: {runtime.last_exit}" if runtime.last_exit else "not answering"
    backoff_until = runtime.backoff_until
    if backoff_until is not None:
        wait = max(0.0, backoff_until - time.time())
        return f"back-off {wait:.0f}s restarting failed agent; {last}; {restarts}"
    return f"not serving: {runtime.state.lower()}; {last}; {restarts}"


@dataclass
class EnvironmentStatus:
    name: str
    branch: str
    commit: str | None = None  # the source commit last observed
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def set_condition(self, type_: str, status: bool, reason: str, message: str = "") -> None:
        existing = self.conditions.get(type_)
        if existing is not None and existing.status == status:
            existing.reason, existing.message = reason, message
            return
        self.conditions[type_] = Condition(type_, status, reason, message)

    def live_conditions(self) -> dict[str, Condition]:
        """`conditions`, with Ready False while a rolled-out agent's process cannot serve.

        The reconcile that set Ready True converged; a crash after it does not call for
        another one, but the environment is not ready while an agent of it is down.
        """
        ready = self.conditions.get("Ready")
        down = [a for a in self.agents.values() if a.rolled_out and not a.ready]
        if ready is None or not ready.status or not down:
            return self.conditions
        message = "; ".join(f"{a.name} is {a.live_state}" for a in sorted(down, key=_by_name))
        live = dict(self.conditions)
        live["Ready"] = Condition(
            "Ready", False, "AgentsNotServing", message, ready.last_transition
        )
        return live

    def as_dict(self) -> dict[str, Any]:
        conditions = self.live_conditions()
        return {
            "name": self.name,
            "branch": self.branch,
            "commit": self.commit,
            "conditions": [conditions[key].as_dict() for key in sorted(conditions)],
            "agents": [self.agents[key].as_dict() for key in sorted(self.agents)],
            "problems": self.problems,
        }


def _by_name(agent: AgentStatus) -> str:
    return agent.name


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
