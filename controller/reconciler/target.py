"""The seam between the reconciler and where agents run.

The local target implements it today; the Kubernetes target will too. The reconciler
depends on this protocol only, never on a concrete target.
"""

from __future__ import annotations

from typing import Any, Protocol

from controller.targets.local.processes import AgentProcess, LaunchSpec
from controller.targets.local.target import CanaryServing, DeployResult, Serving


class Target(Protocol):
    """What the reconciler reads and removes; deploying goes through a driver."""

    async def remove(self, environment: str, agent: str) -> None: ...

    def running(self, environment: str) -> dict[str, str]:
        """Agent → version serving in `environment`."""
        ...

    def environments(self) -> set[str]: ...

    def serving(self) -> list[Serving]: ...

    def canaries(self) -> list[CanaryServing]:
        """Canaries running beside serving versions, with their share of the traffic."""
        ...

    def process(self, environment: str, agent: str) -> AgentProcess | None: ...

    async def close(self) -> None: ...


class ProcessTarget(Target, Protocol):
    """A target that runs agents as local processes (the local driver's)."""

    async def deploy(self, launch: LaunchSpec, deadline_seconds: float) -> DeployResult:
        """Start `launch`'s version; switch traffic to it only once healthy."""
        ...

    async def restore(self, launch: LaunchSpec, deadline_seconds: float) -> DeployResult:
        """Start again a version promoted before a restart: it serves, crashing or not."""
        ...

    async def start_canary(
        self, launch: LaunchSpec, deadline_seconds: float, sticky_header: str | None = None
    ) -> DeployResult:
        """Start `launch`'s version beside the serving one, taking no traffic yet."""
        ...

    def set_canary_weight(self, environment: str, agent: str, weight: int) -> None: ...

    async def promote_canary(self, environment: str, agent: str) -> bool: ...

    async def abort_canary(self, environment: str, agent: str) -> None: ...


class CanaryRequest(Protocol):
    """What the canary loop reads of a target's request (a launch spec, a KubeRequest)."""

    @property
    def environment(self) -> str: ...

    @property
    def agent(self) -> str: ...

    @property
    def version(self) -> str: ...


class CanaryTarget(Protocol):
    """A target that runs a canary beside the serving version and splits traffic by weight:
    the local target behind its router, the Kubernetes target behind `shipyard gateway`."""

    async def start_canary(
        self, request: Any, deadline_seconds: float, sticky_header: str | None = None
    ) -> DeployResult:
        """Start `request`'s version beside the serving one, taking no traffic yet."""
        ...

    def set_canary_weight(self, environment: str, agent: str, weight: int) -> None: ...

    async def promote_canary(self, environment: str, agent: str) -> bool: ...

    async def abort_canary(self, environment: str, agent: str) -> None: ...
