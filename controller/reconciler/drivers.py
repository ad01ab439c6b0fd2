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

from controller.reconciler import kube_workloads, launching
from controller.reconciler.target import ProcessTarget
from controller.source.errors import redact
from controller.specs.model import Agent
from controller.targets.kubernetes import rendering
from controller.targets.kubernetes.target import KubeRequest, KubernetesTarget
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
    needs_checkout: bool  # agents run from the commit's files
    restores_from_store: bool  # after a restart, start again what the store says ran

    def prepare(self, placement: Placement) -> Any:
        """The target's request for `placement`; `launching.NotLaunchable` if impossible."""
        ...

    async def deploy(self, request: Any, deadline_seconds: float) -> DeployResult: ...

    async def restore(self, request: Any, deadline_seconds: float) -> DeployResult:
        """Run again what the store says served before a restart (no health gate)."""
        ...

    async def refresh(self, environment: str, *, thorough: bool) -> list[str]:
        """Observe what runs in `environment` (everything when `thorough`); returns drift
        found, one line each."""
        ...

    async def teardown(self, environment: str) -> None:
        """Remove what is left of an environment once its agents are removed."""
        ...


class LocalDriver:
    """Agents as processes: a launch spec from `spec.run`, run from the commit's files."""

    needs_checkout = True
    restores_from_store = True  # processes die with the controller

    def __init__(self, target: ProcessTarget) -> None:
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

    async def restore(self, request: LaunchSpec, deadline_seconds: float) -> DeployResult:
        return await self.target.restore(request, deadline_seconds)

    async def refresh(self, environment: str, *, thorough: bool) -> list[str]:
        return []  # the processes are ours: nothing else changes them

    async def teardown(self, environment: str) -> None:
        return None


class KubernetesDriver:
    """Agents as Deployments: objects rendered from `spec.image`; the cluster keeps state."""

    needs_checkout = False
    restores_from_store = False  # the cluster still runs everything after a restart

    def __init__(
        self, target: KubernetesTarget, options: kube_workloads.ClusterOptions, source: str
    ) -> None:
        self.target = target
        self.options = options
        self.source = source

    def prepare(self, placement: Placement) -> KubeRequest:
        origin = kube_workloads.Origin(
            commit=placement.commit,
            branch=placement.branch,
            author=placement.author,
            message=placement.message,
            source=redact(self.source),
        )
        settings = kube_workloads.environment_settings(
            placement.environment, placement.branch, self.options
        )
        try:
            workload = kube_workloads.workload(
                placement.agent, placement.environment, origin, self.options
            )
            objects = rendering.workload_objects(workload, settings)
            namespace_objects = rendering.namespace_objects(settings) or [
                # Production's namespace is the install's; apply makes sure it exists.
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": settings.namespace,
                        "labels": {"app.kubernetes.io/part-of": "shipyard"},
                    },
                }
            ]
        except (kube_workloads.NotRenderable, rendering.RenderError) as error:
            raise launching.NotLaunchable(str(error)) from error
        return KubeRequest(
            environment=placement.environment,
            agent=placement.agent.name,
            version=placement.agent.version,
            namespace=settings.namespace,
            objects=tuple(objects),
            namespace_objects=tuple(namespace_objects),
            is_preview=settings.is_preview,
        )

    async def deploy(self, request: KubeRequest, deadline_seconds: float) -> DeployResult:
        return await self.target.deploy(request, deadline_seconds)

    async def restore(self, request: KubeRequest, deadline_seconds: float) -> DeployResult:
        return await self.deploy(request, deadline_seconds)  # never called: the cluster keeps it

    async def refresh(self, environment: str, *, thorough: bool) -> list[str]:
        if not thorough:
            return []  # between resyncs, what this target applied is what runs
        namespace = kube_workloads.namespace_for(environment, self.options)
        await self.target.refresh(environment, namespace)
        return [
            f"{agent}: {what}"
            for env, agent, what in self.target.take_drift()
            if env == environment
        ]

    async def teardown(self, environment: str) -> None:
        await self.target.teardown(environment)
