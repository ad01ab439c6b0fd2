"""How the reconciler hands an agent version to a target, one driver per kind of target.

The reconciler speaks in agents, commits and environments; targets speak in their own
terms (a process launch, rendered Kubernetes objects) and may not import the specs
layer. A driver translates: `prepare` turns a placement into the target's request and
fails early (before anything is recorded) when the agent cannot run there; `deploy`
hands the request over and waits for the health verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from controller.reconciler import launching
from controller.reconciler.target import Target
from controller.specs.model import Agent
from controller.targets.local.processes import LaunchSpec
from controller.targets.local.target import DeployResult


@dataclass(frozen=True)
class Placement:
    """One agent version to run in one environment, and where it came from."""

    agent: Agent
    environment: str
    commit: str
    branch: str
    author: str = ""
    message: str = ""
    workdir: Path | None = None  # the commit's files, for targets that run from a checkout
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


class Driver(Protocol):
    needs_checkout: bool

    def prepare(self, placement: Placement) -> Any:
        """The target's request for `placement`; `launching.NotLaunchable` if impossible."""
        ...

    async def deploy(self, request: Any, deadline_seconds: float) -> DeployResult: ...


class LocalDriver:
    """Agents as processes: a launch spec from `spec.run`, run from the commit's files."""

    needs_checkout = True

    def __init__(self, target: Target) -> None:
        self.target = target

    def prepare(self, placement: Placement) -> LaunchSpec:
        if placement.workdir is None:
            raise launching.NotLaunchable("the local target needs the commit's files")
        return launching.launch_spec(
            placement.agent,
            placement.environment,
            placement.commit,
            placement.workdir,
            placement.secrets,
        )

    async def deploy(self, request: LaunchSpec, deadline_seconds: float) -> DeployResult:
        return await self.target.deploy(request, deadline_seconds)
