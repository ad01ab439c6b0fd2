"""The Kubernetes target against the fake API server, driven by the official client.

Real git, the real controller, driver and target; the API server is the project's fake
(DESIGN §8). Each test reads what happened from the server's own request log and store.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.reconciler import kube_workloads
from controller.reconciler.controller import Controller
from controller.store.records import RolloutResult
from controller.targets.kubernetes import errors
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.leader import LeaderElection
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import kube_controller
from tests.integration.controller_harness import preview_of, wait_for
from tests.integration.kube_controller import Scenario, sync

PRODUCTION_NS = "shipyard-production"


def manifest(name: str, temperature: float = 0.2, deadline: int = 5) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
  labels: {{team: support}}
spec:
  image: ghcr.io/acme/{name}:1.0.0
  model:
    provider: fake
    name: echo
    parameters: {{temperature: {temperature}}}
  prompt:
    system: You are {name}.
  rollout:
    progressDeadlineSeconds: {deadline}
"""


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05, stuck_after=0.3).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


@pytest.fixture
def kubeconfig(fake: FakeApiServer, tmp_path: Path) -> Path:
    return fake.kubeconfig(tmp_path / "kubeconfig")


OPTIONS = kube_workloads.ClusterOptions(
    url_template="https://{agent}--{env}.preview.example.com/",
    production_namespace=PRODUCTION_NS,
)


def run(upstream: Upstream, tmp_path: Path, kubeconfig: Path, scenario: Scenario) -> None:
    kube_controller.run(kube_controller.config(upstream, tmp_path), OPTIONS, kubeconfig, scenario)


def seed(upstream: Upstream, *names: str) -> None:
    upstream.commit({f"agents/{n}.yaml": manifest(n) for n in names}, branch="main")
    upstream.push("main")


def preview_branch(upstream: Upstream, branch: str, temperature: float) -> str:
    """alpha changed on `branch` and pushed; the name of the preview environment it makes."""
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature)}, branch=branch)
    upstream.push(branch)
    return preview_of(branch)


def deployment(fake: FakeApiServer, namespace: str, name: str) -> dict[str, Any] | None:
    return fake.get_object("apps/v1", "deployments", name, namespace)


def version_of(fake: FakeApiServer, namespace: str, name: str) -> str | None:
    found = deployment(fake, namespace, name)
    return found["metadata"]["labels"]["shipyard.dev/version"] if found else None


def written(fake: FakeApiServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests.writes()]


def test_branch_preview_is_a_namespace_with_labelled_objects(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha", "beta")
    environment = preview_branch(upstream, "feature/x", 0.9)

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        assert fake.get_object("v1", "namespaces", environment) is not None
        for kind, plural in (("apps/v1", "deployments"), ("v1", "services")):
            found = fake.get_object(kind, plural, "alpha", environment)
            assert found is not None, plural
            labels = found["metadata"]["labels"]
            assert labels["app.kubernetes.io/managed-by"] == "shipyard"
            assert labels["shipyard.dev/environment"] == environment
        ingress = fake.get_object("networking.k8s.io/v1", "ingresses", "alpha", environment)
        assert ingress is not None
        assert ingress["spec"]["rules"][0]["host"] == f"alpha--{environment}.preview.example.com"
        quotas = target.client.list("v1", "ResourceQuota", environment)
        assert [q["metadata"]["labels"]["shipyard.dev/environment"] for q in quotas] == [
            environment
        ]
        policies = target.client.list("networking.k8s.io/v1", "NetworkPolicy", environment)
        assert len(policies) == 1
        cause = deployment(fake, environment, "alpha")
        assert cause is not None
        assert "kubernetes.io/change-cause" in cause["metadata"]["annotations"]
        status = controller.statuses[environment]
        assert status.conditions["Ready"].status, status.as_dict()

    run(upstream, tmp_path, kubeconfig, scenario)


def test_nothing_changed_makes_zero_writes_and_one_change_writes_one_agent(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha", "beta", "gamma")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        fake.requests.clear()
        object.__setattr__(controller.config, "resync_interval", 0.0)  # reconcile all again
        await sync(controller)
        assert written(fake) == []
        assert fake.requests.matching(method="GET"), "the resync read nothing: did it run?"
        upstream.commit({"agents/beta.yaml": manifest("beta", 0.7)}, branch="main")
        upstream.push("main")
        fake.requests.clear()
        await sync(controller)
        writes = written(fake)
        assert writes, "the change was not applied"
        assert all("/beta" in w or "beta-config-" in w for w in writes), writes
        assert version_of(fake, PRODUCTION_NS, "beta") == target.running(naming.PRODUCTION)["beta"]

    run(upstream, tmp_path, kubeconfig, scenario)


def test_a_new_prompt_replaces_its_agents_config_map_and_leaves_the_others(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    # "beta" and "beta-two": one name starts the other's, so a prefix match would mix them.
    seed(upstream, "beta", "beta-two")

    def config_maps(client: KubeClient) -> dict[str, list[str]]:
        owned = client.list(
            "v1", "ConfigMap", PRODUCTION_NS, "app.kubernetes.io/managed-by=shipyard"
        )
        by_agent: dict[str, list[str]] = {}
        for item in owned:
            agent = item["metadata"]["labels"]["shipyard.dev/agent"]
            by_agent.setdefault(agent, []).append(item["metadata"]["name"])
        return by_agent

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        before = config_maps(target.client)
        assert sorted(before) == ["beta", "beta-two"]
        assert all(len(names) == 1 for names in before.values()), before
        upstream.commit({"agents/beta.yaml": manifest("beta", 0.7)}, branch="main")
        upstream.push("main")
        await sync(controller)
        after = config_maps(target.client)
        assert after["beta-two"] == before["beta-two"]
        assert len(after["beta"]) == 1, after
        assert after["beta"] != before["beta"], (before, after)

    run(upstream, tmp_path, kubeconfig, scenario)


def test_merge_updates_production_and_deletes_the_preview_namespace(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")
    environment = preview_branch(upstream, "feature/m", 0.5)

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        preview_version = version_of(fake, environment, "alpha")
        assert preview_version is not None
        upstream.git("checkout", "--quiet", "main")
        upstream.git("merge", "--quiet", "--no-ff", "-m", "merge", "feature/m")
        upstream.push("main")
        await sync(controller)
        assert version_of(fake, PRODUCTION_NS, "alpha") == preview_version
        namespace = fake.get_object("v1", "namespaces", environment)
        assert namespace is None or namespace.get("status", {}).get("phase") == "Terminating"

    run(upstream, tmp_path, kubeconfig, scenario)


def test_deleted_branch_deletes_its_namespace(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")
    environment = preview_branch(upstream, "tmp", 0.5)

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        assert fake.get_object("v1", "namespaces", environment) is not None
        upstream.push(":tmp")
        await sync(controller)
        assert any(
            r.method == "DELETE" and r.path.endswith(f"/namespaces/{environment}")
            for r in fake.requests.writes()
        )

    run(upstream, tmp_path, kubeconfig, scenario)


def test_drift_is_found_and_corrected(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        assert target.client.delete("apps/v1", "Deployment", "alpha", PRODUCTION_NS)
        object.__setattr__(controller.config, "resync_interval", 0.0)
        await sync(controller)
        assert deployment(fake, PRODUCTION_NS, "alpha") is not None
        reasons = [e.reason for e in controller.store.events(naming.PRODUCTION, "alpha")]
        assert "DriftDetected" in reasons

    run(upstream, tmp_path, kubeconfig, scenario)


def test_stuck_rollout_is_rolled_back_automatically(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        good = version_of(fake, PRODUCTION_NS, "alpha")
        fake.deployments.set_mode("stuck", f"{PRODUCTION_NS}/alpha", deadline=0.3)
        upstream.commit({"agents/alpha.yaml": manifest("alpha", 1.9)}, branch="main")
        upstream.push("main")
        await sync(controller)
        assert version_of(fake, PRODUCTION_NS, "alpha") == good
        (last,) = controller.store.rollouts("alpha", naming.PRODUCTION)[-1:]
        assert last.result is RolloutResult.ROLLED_BACK
        assert "ProgressDeadlineExceeded" in last.reason

    run(upstream, tmp_path, kubeconfig, scenario)


def test_api_faults_converge_without_duplicates(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha", "beta")
    fake.faults.fail(3, 500, method="PATCH")
    fake.faults.throttle(2, retry_after=1, method="GET")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        for name in ("alpha", "beta"):
            assert deployment(fake, PRODUCTION_NS, name) is not None
        owned = target.client.list(
            "v1", "ConfigMap", PRODUCTION_NS, "app.kubernetes.io/managed-by=shipyard"
        )
        assert sorted(c["metadata"]["labels"]["shipyard.dev/agent"] for c in owned) == [
            "alpha",
            "beta",
        ]
        assert fake.requests.matching(method="PATCH")

    run(upstream, tmp_path, kubeconfig, scenario)


def test_only_one_of_two_candidates_leads(kubeconfig: Path, fake: FakeApiServer) -> None:
    client = KubeClient.from_config(str(kubeconfig))
    first = LeaderElection(client, "default", identity="one", lease_seconds=30)
    second = LeaderElection(client, "default", identity="two", lease_seconds=30)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.try_acquire()  # renewing
    lease = fake.get_object("coordination.k8s.io/v1", "leases", "shipyard-controller", "default")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "one"


def test_kubectl_lists_what_shipyard_made(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    seed(upstream, "alpha")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)

    run(upstream, tmp_path, kubeconfig, scenario)
    listed = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "deploy", "-A",
         "-l", "app.kubernetes.io/managed-by=shipyard"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert "alpha" in listed.stdout
    assert PRODUCTION_NS in listed.stdout


def test_a_hanging_request_times_out_and_is_retried(kubeconfig: Path, fake: FakeApiServer) -> None:
    client = KubeClient.from_config(str(kubeconfig))
    client.timeout = 0.5
    client.backoff_base = 0.01
    path = "/api/v1/namespaces/default$"
    fake.requests.clear()
    fake.faults.delay(3.0, 1, method="GET", path=path)
    found = client.get("v1", "Namespace", "default")
    assert found is not None
    assert found["metadata"]["name"] == "default"
    # The fake logs a request once it answers. The hung first attempt answers (to nobody)
    # only after its 3 s, so a second GET is in the log only if the client gave up on
    # the first and asked again; a client that waited it out made one request.
    wait_for(lambda: len(fake.requests.matching("GET", path)) >= 2, what="the hung attempt")


def test_apply_is_a_forced_server_side_apply_of_exactly_the_object(
    kubeconfig: Path, fake: FakeApiServer
) -> None:
    client = KubeClient.from_config(str(kubeconfig))
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "labels": {"a": "b"}},
        "data": {"prompt": 'You are ünïcode: "quoted"\nand multi-line.'},
    }
    applied = client.apply(config_map)
    assert applied["data"] == config_map["data"]
    (request,) = fake.requests.matching(method="PATCH", path="/configmaps/settings$")
    assert request.content_type == "application/apply-patch+yaml"
    assert request.params["fieldManager"] == "shipyard"
    assert request.params["force"].lower() == "true"
    stored = fake.get_object("v1", "configmaps", "settings", "default")
    assert stored is not None
    assert stored["data"] == config_map["data"]
    assert stored["metadata"]["labels"] == {"a": "b"}
    assert [m["manager"] for m in stored["metadata"]["managedFields"]] == ["shipyard"]

    nameless = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}}
    with pytest.raises(errors.Invalid, match=r"without metadata\.name"):
        client.apply(nameless)
    homeless = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    with pytest.raises(errors.Invalid, match=r"ConfigMap x without a namespace"):
        client.apply(homeless)
    assert len(fake.requests.matching(method="PATCH")) == 1
