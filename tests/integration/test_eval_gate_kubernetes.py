"""`spec.rollout.requireEvals` on the Kubernetes target, end to end.

The controller (in this process) deploys through the real Kubernetes target to the fake
API server, whose test-only kubelet runs each pod as a process on a loopback address of
its own; `shipyard gateway` routes the agent's traffic. The new version runs as the
canary Deployment at weight 0 and is evaluated at its own pod (`podIP:containerPort`),
the stable one at its pod: a change that breaks a case passing on stable is aborted
before any request through the gateway reaches it, and the fix rolls out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from controller.reconciler.controller import Controller
from controller.store.records import Rollout, RolloutResult
from controller.store.sqlite import Store
from controller.targets.kubernetes import canaries
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import gateway_cluster, kube_controller
from tests.integration.gateway_cluster import NAMESPACE, Gateway, fake, gateway, kubeconfig, kubelet

__all__ = ["fake", "gateway", "kubeconfig", "kubelet"]  # fixtures from gateway_cluster

AGENT = "alpha"
SUITE = """\
apiVersion: shipyard.dev/v1alpha1
kind: EvalSuite
metadata:
  name: alpha-golden
spec:
  agent: alpha
  cases:
    - name: healthy
      request: {method: GET, path: /healthz}
      expect: {status: 200, contains: [ok]}
    - name: polite
      request: {method: GET, path: /}
      expect: {jsonPath: [{path: $.tone, equals: polite}]}
"""


def manifest(tone: str, rollout: str = "", prompt: str = "You help.") -> str:
    return gateway_cluster.agent_manifest(
        AGENT,
        prompt,
        "    requireEvals: true\n" + rollout,
        env=f"  env:\n    - name: TONE\n      value: {tone}\n",
    )


CANARY = """\
    strategy: Canary
    steps:
      - setWeight: 50
"""


def tones(gateway: Gateway, count: int = 20) -> set[tuple[str, str]]:
    """(version, tone) of `count` answers through the gateway."""
    with httpx.Client(timeout=10) as client:
        replies = [gateway.get(AGENT, "/", client) for _ in range(count)]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    return {(r.headers["x-shipyard-version"], r.json()["tone"]) for r in replies}


def latest(store: Store) -> Rollout:
    return store.rollouts(AGENT, "production")[-1]


@pytest.mark.parametrize("rollout", ["", CANARY], ids=["RollingUpdate", "Canary"])
def test_a_version_breaking_a_passing_case_is_aborted_on_the_cluster_and_a_fix_rolls_out(
    upstream: Upstream,
    tmp_path: Path,
    kubeconfig: Path,
    gateway: Gateway,
    fake: FakeApiServer,
    rollout: str,
) -> None:
    upstream.commit(
        {f"agents/{AGENT}.yaml": manifest("polite", rollout), "evals/alpha.yaml": SUITE},
        branch="main",
    )
    upstream.push("main")
    config = kube_controller.config(upstream, tmp_path)

    async def push_and_settle(controller: Controller, tone: str, prompt: str) -> str:
        upstream.commit({f"agents/{AGENT}.yaml": manifest(tone, rollout, prompt)}, branch="main")
        upstream.push("main")
        await kube_controller.sync(controller)
        return latest(controller.store).to_version

    async def scenario() -> None:
        target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
        async with kube_controller.controller_on(
            config, target, gateway_cluster.CLUSTER_OPTIONS
        ) as controller:
            store = controller.store
            await kube_controller.sync(controller)
            stable = target.running("production")[AGENT]
            assert await asyncio.to_thread(tones, gateway) == {(stable, "polite")}

            broken = await push_and_settle(controller, "curt", "You help.")
            assert broken != stable
            aborted = latest(store)
            assert aborted.result is RolloutResult.ABORTED, aborted
            assert "evals failed: 1 case(s) passing on" in aborted.reason
            assert "alpha-golden/polite" in aborted.reason
            # Judged before it took any traffic: the gate and the decision are its lines.
            assert [step["kind"] for step in aborted.steps] == ["evals", "ended"]
            assert target.running("production") == {AGENT: stable}
            assert target.canaries() == []
            name = canaries.canary_name(AGENT)
            assert fake.get_object("apps/v1", "deployments", name, NAMESPACE) is None
            assert await asyncio.to_thread(tones, gateway) == {(stable, "polite")}
            events = store.events("production", AGENT)
            assert any(
                e.reason == "RolloutAborted" and "alpha-golden/polite" in e.message for e in events
            )
            assert not any(e.reason == "EvalGateSkipped" and stable in e.message for e in events)

            fixed = await push_and_settle(controller, "polite", "You help, briefly.")
            promoted = latest(store)
            assert (promoted.to_version, promoted.result) == (fixed, RolloutResult.HEALTHY)
            assert (promoted.steps[0]["kind"], promoted.steps[0]["what"]) == (
                "evals",
                f"Passed: 2/2 cases pass; none passing on {stable} fails",
            )
            assert target.running("production") == {AGENT: fixed}
            assert target.canaries() == []
            assert await asyncio.to_thread(tones, gateway) == {(fixed, "polite")}

    asyncio.run(scenario())
