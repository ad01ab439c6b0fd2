"""The reconciler's parts, built once and handed each only the collaborators it uses.

The loop (`controller.Controller`) owns tasks and scheduling; everything else is one of
these parts. Building them here keeps the wiring readable in one place and keeps every
part free of the loop: none of them imports or receives the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from controller.metrics.collector import Metrics
from controller.reconciler import canary, drivers, interrupted, restoring
from controller.reconciler.agent_states import AgentStates, Failures
from controller.reconciler.commits import Commits
from controller.reconciler.config import ControllerConfig
from controller.reconciler.deploying import Deployer
from controller.reconciler.eval_gate import EvalGate
from controller.reconciler.eval_runs import EvalRunner
from controller.reconciler.evaluation import Evaluation
from controller.reconciler.manifest_cache import ManifestCache
from controller.reconciler.placing import Placer
from controller.reconciler.pr_feedback import PullRequests
from controller.reconciler.prometheus_analysis import Prometheus
from controller.reconciler.reconciling import EnvironmentReconciler
from controller.reconciler.recorder import Recorder
from controller.reconciler.retiring import Retirer
from controller.reconciler.secret_access import SecretAccess
from controller.reconciler.status import EnvironmentStatus
from controller.reconciler.steering import Steering
from controller.reconciler.target import Target
from controller.source import mirror as mirrors
from controller.store.eval_results import EvalResults
from controller.store.sqlite import Store
from preview.feedback import Notifier


@dataclass(frozen=True)
class Parts:
    recorder: Recorder
    commits: Commits
    evaluation: Evaluation
    steering: Steering
    deployer: Deployer
    reconciling: EnvironmentReconciler
    retirer: Retirer
    restore: Callable[[], Coroutine[Any, Any, None]]


def assemble(
    *,
    config: ControllerConfig,
    mirror: mirrors.Mirror,
    store: Store,
    target: Target,
    driver: drivers.Driver,
    clock: Callable[[], float],
    metrics: Metrics,
    notifier: Notifier | None,
    repository: str | None,
    statuses: dict[str, EnvironmentStatus],
    canaries: canary.Book,
    open_rollouts: interrupted.OpenRollouts,
    url: Callable[[str, str], str],
    reconcile_again: Callable[[str], None],
) -> Parts:
    recorder = Recorder(store, metrics, clock)
    commits = Commits(
        mirror,
        ManifestCache(target=driver.validates_for),
        manifests_root=config.manifests_root,
        checkouts_dir=config.checkouts_dir if driver.needs_checkout else None,
    )
    secrets = SecretAccess(config, store)
    placer = Placer(commits, secrets)
    failures = Failures()
    agent_states = AgentStates(target, store, failures, canaries, url)
    runner = EvalRunner(EvalResults(config.database))
    # On Kubernetes, evals reach production's versions at their pods (`eval_runs.PodEndpoint`).
    pod_endpoint = (
        driver.target.version_endpoint if isinstance(driver, drivers.KubernetesDriver) else None
    )
    evaluation = Evaluation(
        runner,
        statuses=statuses,
        store=store,
        commits=commits,
        url=url,
        public_port=config.public_port,
        pod_endpoint=pod_endpoint,
    )
    pull_requests = PullRequests(notifier, repository, evaluation)
    evaluation.on_compared = lambda status: pull_requests.report(status, "success")
    resumer = interrupted.Resumer(
        open_rollouts, store=store, recorder=recorder, driver=driver, placer=placer
    )
    steering = Steering(
        statuses=statuses,
        store=store,
        target=target,
        driver=driver,
        placer=placer,
        recorder=recorder,
        agent_states=agent_states,
        failures=failures,
        open_rollouts=open_rollouts,
        wake=reconcile_again,
        clock=clock,
    )
    deployer = Deployer(
        driver=driver,
        store=store,
        recorder=recorder,
        secrets=secrets,
        failures=failures,
        canaries=canaries,
        windows=metrics.windows,
        open_rollouts=open_rollouts,
        statuses=statuses,
        clock=clock,
        eval_gate=EvalGate(
            commits=commits,
            runner=runner,
            target=target,
            url=url,
            public_port=config.public_port,
            pod_endpoint=pod_endpoint,
        ),
        prometheus=Prometheus(config.prometheus_url) if config.prometheus_url else None,
    )
    reconciling = EnvironmentReconciler(
        config=config,
        statuses=statuses,
        store=store,
        commits=commits,
        target=target,
        driver=driver,
        deployer=deployer,
        resumer=resumer,
        failures=failures,
        pins=steering.pins_in_force,
        agent_states=agent_states,
        pull_requests=pull_requests,
        recorder=recorder,
        metrics=metrics,
        on_ready=evaluation.environment_ready,
        clock=clock,
    )
    retirer = Retirer(
        config=config,
        store=store,
        target=target,
        driver=driver,
        commits=commits,
        statuses=statuses,
        resumer=resumer,
        failures=failures,
        pull_requests=pull_requests,
        recorder=recorder,
        clock=clock,
    )

    def restore() -> Coroutine[Any, Any, None]:
        return restoring.restore(
            store=store,
            driver=driver,
            placer=placer,
            statuses=statuses,
            agent_states=agent_states,
            recorder=recorder,
        )

    return Parts(recorder, commits, evaluation, steering, deployer, reconciling, retirer, restore)
