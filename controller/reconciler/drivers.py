"""How the reconciler hands an agent version to a target, one driver per kind of target.

The reconciler speaks in agents, commits and environments; targets speak in their own
terms (a process launch, rendered Kubernetes objects) and may not import the specs
layer. A driver translates: `prepare` turns a placement into the target's request and
fails early (before anything is recorded) when the agent cannot run there; `deploy`
hands the request over and waits for the health verdict.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from controller.reconciler import kube_secrets, kube_workloads, launching
from controller.reconciler.secret_scopes import SecretView
from controller.reconciler.target import ProcessTarget
from controller.source.errors import redact
from controller.specs.model import Agent
from controller.targets.kubernetes import rendering
from controller.targets.kubernetes.errors import ApiError
from controller.targets.kubernetes.rendering import KubeObject
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
    secrets: SecretView = field(default_factory=SecretView.empty, repr=False)


class Driver(Protocol):
    needs_checkout: bool  # agents run from the commit's files
    restores_from_store: bool  # after a restart, start again what the store says ran
    validates_for: str | None  # manifests are also checked for this target (`semantic`)

    async def prepare(self, placement: Placement) -> Any:
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

    def recall(self, request: Any) -> None:
        """After a restart: `request` is the healthy version to roll back to should the
        next deploy of its agent fail (targets that keep no such memory ignore it)."""
        ...


class LocalDriver:
    """Agents as processes: a launch spec from `spec.run`, run from the commit's files."""

    needs_checkout = True
    restores_from_store = True  # processes die with the controller
    validates_for: str | None = None

    def __init__(self, target: ProcessTarget) -> None:
        self.target = target

    async def prepare(self, placement: Placement) -> LaunchSpec:
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

    def recall(self, request: LaunchSpec) -> None:
        return None  # the restart started the previous version again; the target knows it


class KubernetesDriver:
    """Agents as Deployments: objects rendered from `spec.image`; the cluster keeps state."""

    needs_checkout = False
    restores_from_store = False  # the cluster still runs everything after a restart
    # An agent without an image Stalls its environment, as `validate --target kubernetes`
    # reports it, instead of failing when rendered.
    validates_for: str | None = "kubernetes"

    def __init__(
        self,
        target: KubernetesTarget,
        options: kube_workloads.ClusterOptions,
        source: str,
        credentials: frozenset[str] = frozenset(),
    ) -> None:
        self.target = target
        self.options = options
        self.source = source
        self.credentials = credentials  # the controller's own: never in an agent's Secret
        # environment → its namespace objects as last rendered: every agent's request
        # holds this one tuple instead of a copy of its own (1,000 agents, 1,000 copies
        # kept by the target as last-good requests).
        self._shared_namespace_objects: dict[str, tuple[KubeObject, ...]] = {}

    async def prepare(self, placement: Placement) -> KubeRequest:
        copies = await self._secret_copies(placement)
        request = self._render(placement)
        if not copies:
            return request
        settings = kube_workloads.environment_settings(
            placement.environment, placement.branch, self.options
        )
        secrets = tuple(rendering.secret_copy(source, settings) for source in copies)
        return dataclasses.replace(
            request, namespace_objects=(*request.namespace_objects, *secrets)
        )

    async def _secret_copies(self, placement: Placement) -> list[KubeObject]:
        """The Secrets a preview gets copies of; `NotLaunchable` for any it may not have."""
        agent = placement.agent
        if not agent.spec.secrets or not kube_workloads.runs_in(agent, placement.environment):
            return []
        if placement.secrets.withheld is not None:
            raise launching.NotLaunchable(
                f'agent "{agent.name}" references secrets: {placement.secrets.withheld}'
            )
        namespace = self.options.production_namespace
        names = kube_secrets.referenced(agent)
        try:
            found = await asyncio.to_thread(self._read_secrets, namespace, names)
        except ApiError as error:
            raise launching.NotLaunchable(
                f"cannot read the Secrets {', '.join(names)} in namespace {namespace}: {error}"
            ) from error
        return kube_secrets.copies_for(
            agent,
            placement.environment,
            found,
            namespace=namespace,
            # The cluster's own token too: a Secret holding it would hand a preview the
            # controller's access to every namespace.
            credentials=self.credentials | self.target.client.own_credentials(),
        )

    def _read_secrets(self, namespace: str, names: list[str]) -> dict[str, KubeObject | None]:
        return {name: self.target.client.get("v1", "Secret", name, namespace) for name in names}

    def _render(self, placement: Placement) -> KubeRequest:
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
            if not settings.is_preview and settings.gateway is not None:
                namespace_objects.append(rendering.gateway_service(settings))
        except (kube_workloads.NotRenderable, rendering.RenderError) as error:
            raise launching.NotLaunchable(str(error)) from error
        return KubeRequest(
            environment=placement.environment,
            agent=placement.agent.name,
            version=placement.agent.version,
            namespace=settings.namespace,
            objects=tuple(objects),
            namespace_objects=self._shared(placement.environment, tuple(namespace_objects)),
            is_preview=settings.is_preview,
        )

    def _shared(self, environment: str, rendered: tuple[KubeObject, ...]) -> tuple[KubeObject, ...]:
        """`rendered`, or the equal tuple an earlier agent of `environment` got."""
        shared = self._shared_namespace_objects.get(environment)
        if shared is not None and shared == rendered:
            return shared
        self._shared_namespace_objects[environment] = rendered
        return rendered

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
        self._shared_namespace_objects.pop(environment, None)
        await self.target.teardown(environment)

    def recall(self, request: KubeRequest) -> None:
        self.target.remember_healthy(request)
