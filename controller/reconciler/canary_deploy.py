"""Whether a deploy runs as a canary, and running it with only what it needs.

A canary needs a version to compare against (the first deploy of an agent has none and
rolls out plainly) and a target that runs both versions side by side behind Shipyard's
router: the local target, or the Kubernetes target behind `shipyard gateway` (a second
Deployment, its weight published for the gateway). A RollingUpdate with an eval gate
runs the same way with no steps: the new version starts beside the
stable one at weight 0, the gate judges it, and it takes all traffic only once the gate
passes. On Kubernetes that new version is the canary Deployment, judged at its own pod.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.metrics.windows import RequestWindows
from controller.reconciler import canary, drivers
from controller.reconciler.canary import Ending, Gate
from controller.reconciler.prometheus_analysis import Prometheus
from controller.specs.model import Agent
from controller.store.sqlite import Store
from controller.targets.kubernetes.target import KubeRequest
from controller.targets.local.processes import LaunchSpec
from controller.targets.local.target import DeployResult


@dataclass(frozen=True)
class CanaryOutcome:
    result: DeployResult
    aborted: bool  # stopped by its analysis or `rollout abort` (not a health failure)


def applies(
    agent: Agent, current: str | None, driver: drivers.Driver, *, gated: bool = False
) -> bool:
    return (
        current is not None
        and (agent.spec.rollout.is_canary or gated)
        and isinstance(driver, (drivers.LocalDriver, drivers.KubernetesDriver))
    )


async def deploy(
    *,
    driver: drivers.Driver,
    store: Store,
    book: canary.Book,
    windows: RequestWindows,
    agent: Agent,
    request: LaunchSpec | KubeRequest,
    stable: str,
    deadline_seconds: float,
    rollout_id: int | None = None,
    prometheus: Prometheus | None = None,
    gate: Gate | None = None,
) -> CanaryOutcome:
    assert isinstance(driver, (drivers.LocalDriver, drivers.KubernetesDriver))
    run = canary.CanaryRun(
        target=driver.target,
        store=store,
        book=book,
        windows=windows,
        launch=request,
        settings=agent.spec.rollout,
        stable=stable,
        rollout_id=rollout_id,
        prometheus=prometheus,
        gate=gate,
    )
    ended = await run.run(deadline_seconds)
    if ended.ending is Ending.PROMOTED:
        return CanaryOutcome(DeployResult(True, ended.message), aborted=False)
    if ended.ending is Ending.ABORTED:
        return CanaryOutcome(DeployResult(False, f"canary aborted: {ended.message}"), aborted=True)
    return CanaryOutcome(DeployResult(False, ended.message), aborted=False)
