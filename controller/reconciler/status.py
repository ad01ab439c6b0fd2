"""Status as people and tools read it: conditions per environment, state per agent.

Shaped after Kubernetes conditions (`type`, `status`, `reason`, `message`,
`lastTransitionTime`) so `Ready`, `Reconciling` and `Stalled` mean what a Flux or
kubectl user expects.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class AgentStatus:
    name: str
    version: str | None  # serving now
    desired_version: str | None
    commit: str | None
    url: str | None
    state: str  # Healthy, Progressing, Failed, Pinned, ...
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    since: float | None = None  # when the serving version started serving
    pinned_version: str | None = None  # held here by `rollout undo` or `rollout pause`

    @property
    def ready(self) -> bool:
        """Serving what it should: the pinned version while pinned, else the branch's."""
        wanted = self.pinned_version or self.desired_version
        return self.version is not None and self.version == wanted

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "desiredVersion": self.desired_version,
            "commit": self.commit,
            "url": self.url,
            "ready": self.ready,
            "state": self.state,
            "message": self.message,
            "labels": self.labels,
            "since": self.since,
            "pinnedVersion": self.pinned_version,
        }


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "branch": self.branch,
            "commit": self.commit,
            "conditions": [self.conditions[key].as_dict() for key in sorted(self.conditions)],
            "agents": [self.agents[key].as_dict() for key in sorted(self.agents)],
            "problems": self.problems,
        }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
