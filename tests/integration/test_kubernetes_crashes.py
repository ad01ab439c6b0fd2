"""Crash states end a Kubernetes rollout in seconds, with the reason and the last log lines.

The fake API server runs pods for each ReplicaSet and shows, for a bad version, the
status a kubelet or scheduler reports (CrashLoopBackOff, OOMKilled, image pull errors, a
missing Secret, no node). The Deployment's own deadline here is ten minutes: only the pod
states can end these rollouts within the test's time, and each is rolled back to the
version that ran before, with the reason in the rollout record, the event and status.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.reconciler.controller import Controller
from controller.store.records import RolloutResult
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.kube_controller import sync
from tests.integration.test_kubernetes_health import (  # noqa: F401
    PRODUCTION_NS,
    fake,
    manifest,
    run,
)

LOG = ["starting agent", "loading prompt", "KeyError: 'OPENAI_API_KEY'"]


def patient(name: str, temperature: float = 0.2) -> str:
    return manifest(name, temperature).replace(
        "progressDeadlineSeconds: 20", "progressDeadlineSeconds: 600"
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("CrashLoopBackOff", "CrashLoopBackOff in pod alpha-"),
        ("OOMKilled", "OOMKilled in pod alpha-"),
        ("ImagePullBackOff", 'Back-off pulling image "ghcr.io/acme/alpha:1.0.0"'),
        ("ErrImagePull", "ErrImagePull in pod alpha-"),
        ("CreateContainerConfigError", 'secret "missing" not found'),
        ("Unschedulable", "Unschedulable in pod alpha-"),
    ],
)
def test_a_crashing_version_fails_early_and_is_rolled_back(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,  # noqa: F811
    reason: str,
    expected: str,
) -> None:
    upstream.commit({"agents/alpha.yaml": patient("alpha")}, branch="main")
    upstream.push("main")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        good = target.running(naming.PRODUCTION)["alpha"]
        fake.pods.set_crash(f"{PRODUCTION_NS}/alpha", reason, new_only=True)
        fake.pods.set_logs(f"{PRODUCTION_NS}/alpha", ["serving"], previous=LOG)
        upstream.commit({"agents/alpha.yaml": patient("alpha", 0.9)}, branch="main")
        upstream.push("main")
        await sync(controller)
        last = controller.store.rollouts("alpha", naming.PRODUCTION)[-1]
        assert last.result is RolloutResult.ROLLED_BACK, last
        assert expected in last.reason
        crashed = reason in ("CrashLoopBackOff", "OOMKilled")
        assert ("last log lines: " + " | ".join(LOG) in last.reason) is crashed, last.reason
        assert target.running(naming.PRODUCTION)["alpha"] == good
        (failed,) = [
            e for e in controller.store.events(naming.PRODUCTION, "alpha")
            if e.reason == "RolloutFailed"
        ]  # fmt: skip
        assert expected in failed.message
        agent = controller.statuses[naming.PRODUCTION].agents["alpha"]
        assert expected in agent.message

    run(upstream, tmp_path, fake, scenario)


def test_a_crash_that_clears_within_the_grace_does_not_fail_the_rollout(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,  # noqa: F811
) -> None:
    upstream.commit({"agents/alpha.yaml": patient("alpha")}, branch="main")
    upstream.push("main")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        fake.pods.set_crash(f"{PRODUCTION_NS}/alpha", "ErrImagePull", new_only=True)
        upstream.commit({"agents/alpha.yaml": patient("alpha", 0.9)}, branch="main")
        upstream.push("main")
        syncing = asyncio.create_task(sync(controller))
        await asyncio.sleep(1.0)  # a registry hiccup, shorter than the grace
        fake.pods.set_crash(f"{PRODUCTION_NS}/alpha", None)
        await syncing
        last = controller.store.rollouts("alpha", naming.PRODUCTION)[-1]
        assert last.result is RolloutResult.HEALTHY, last.reason

    run(upstream, tmp_path, fake, scenario)
