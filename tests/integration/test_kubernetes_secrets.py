"""Secret scopes on the Kubernetes target, against the fake API server.

An operator keeps Secrets in the production namespace (created here with the official
client, as `kubectl create secret` would) and scopes them with `shipyard.dev/scope`.
The tests read what landed in each namespace from the server's own store: a preview's
namespace must hold copies of exactly the Secrets scoped to previews, and nothing that
production or the controller keeps for itself.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as typed_client

from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.records import ReviewRequest
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.kubeconfig import DEFAULT_TOKEN as KUBE_TOKEN
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.controller_harness import preview_of

PRODUCTION_NS = "shipyard-production"
WEBHOOK_SECRET = "whsec-k8s-61f0aa"
SECRETS = {
    # name: (scope annotation or None, data)
    "openai": (None, {"api-key": "sk-live-prod-k8s"}),
    "sentry": ("all", {"dsn": "dsn-shared-k8s"}),
    "sandbox": ("previews", {"api-key": "sk-test-prev-k8s"}),
    "shipyard-secrets": ("all", {"SHIPYARD_WEBHOOK_SECRET": WEBHOOK_SECRET}),
    "copied": ("all", {"hook": WEBHOOK_SECRET}),
    # The controller's own bearer token for the cluster, copied by a careless operator.
    "kubetoken": ("all", {"token": f"Bearer {KUBE_TOKEN}"}),
}


def agent(name: str, *references: tuple[str, str, str]) -> str:
    secrets = "".join(
        f"\n    - env: {env}\n      secretRef: {{name: {secret}, key: {key}}}"
        for env, secret, key in references
    )
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  image: ghcr.io/acme/{name}:1.0.0
  model: {{provider: fake, name: echo}}
  prompt: {{system: You are {name}.}}
  rollout: {{progressDeadlineSeconds: 5}}
  secrets:{secrets or " []"}
"""


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    core = typed_client.CoreV1Api(
        typed_client.ApiClient(typed_client.Configuration(host=server.url))
    )
    core.create_namespace(
        typed_client.V1Namespace(metadata=typed_client.V1ObjectMeta(name=PRODUCTION_NS))
    )
    for name, (scope, data) in SECRETS.items():
        annotations = {"shipyard.dev/scope": scope} if scope else None
        metadata = typed_client.V1ObjectMeta(name=name, annotations=annotations)
        core.create_namespaced_secret(
            PRODUCTION_NS, typed_client.V1Secret(metadata=metadata, string_data=data)
        )
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


def run_controller(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer, *, fork_branch: str | None = None
) -> Controller:
    """Sync once and wait for every environment; the controller is closed on return."""
    config = ControllerConfig(
        repo=str(upstream.bare),
        state_dir=tmp_path / "state",
        poll_interval=3600,
        credentials=frozenset({WEBHOOK_SECRET}),
    )
    options = kube_workloads.ClusterOptions(
        url_template="https://{agent}--{env}.preview.example.com/",
        production_namespace=PRODUCTION_NS,
    )
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")

    async def main() -> Controller:
        store = Store(config.database)
        if fork_branch is not None:
            store.record_review_request(ReviewRequest(fork_branch, 3, True, frozenset()))
        target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
        driver = drivers.KubernetesDriver(target, options, config.repo, config.credentials)
        controller = Controller(
            config, Mirror(config.repo, config.mirror_dir), store, target, driver=driver
        )
        try:
            await controller.sync_once()
            await controller.wait_idle()
        finally:
            await controller.close()
            store.close()
        return controller

    return asyncio.run(main())


def secret(fake: FakeApiServer, namespace: str, name: str) -> dict[str, str] | None:
    found = fake.get_object("v1", "secrets", name, namespace)
    if found is None:
        return None
    return {key: base64.b64decode(value).decode() for key, value in found["data"].items()}


def message(controller: Controller, environment: str, agent_name: str) -> str:
    return controller.statuses[environment].agents[agent_name].message


def deployed_env(fake: FakeApiServer, namespace: str, name: str) -> list[dict[str, Any]]:
    found = fake.get_object("apps/v1", "deployments", name, namespace)
    assert found is not None, f"no Deployment {namespace}/{name}"
    return found["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[no-any-return]


ATTACKS = {
    "thief": (("KEY", "openai", "api-key"), "openai is scoped to production"),
    "hook": (("KEY", "shipyard-secrets", "SHIPYARD_WEBHOOK_SECRET"), "controller's credentials"),
    "copied": (("KEY", "copied", "hook"), "controller's own credentials"),
    "kubetoken": (("KEY", "kubetoken", "token"), "controller's own credentials"),
    "ghost": (("KEY", "nowhere", "x"), "no Secret nowhere in namespace shipyard-production"),
}


def test_a_preview_gets_copies_of_preview_scoped_secrets_only(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit(
        {"agents/bot.yaml": agent("bot", ("OPENAI_API_KEY", "openai", "api-key"))},
        branch="main",
    )
    upstream.push("main")
    files: dict[str, str | None] = {
        f"agents/{name}.yaml": agent(name, reference) for name, (reference, _) in ATTACKS.items()
    }
    files["agents/fair.yaml"] = agent(
        "fair", ("SENTRY_DSN", "sentry", "dsn"), ("OPENAI_API_KEY", "sandbox", "api-key")
    )
    upstream.commit(files, branch="attack")
    upstream.push("attack")
    preview = preview_of("attack")

    controller = run_controller(upstream, tmp_path, fake)

    # Production references its own Secret in place; nothing is copied there.
    assert deployed_env(fake, PRODUCTION_NS, "bot")[0] == {
        "name": "OPENAI_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}},
    }
    # The preview's namespace holds exactly the copies of what it may have.
    assert secret(fake, preview, "sentry") == {"dsn": "dsn-shared-k8s"}
    assert secret(fake, preview, "sandbox") == {"api-key": "sk-test-prev-k8s"}
    for name in ("openai", "shipyard-secrets", "copied", "kubetoken"):
        assert secret(fake, preview, name) is None, name
    names = {item["name"] for item in deployed_env(fake, preview, "fair")}
    assert {"SENTRY_DSN", "OPENAI_API_KEY"} <= names
    for name, (_, refusal) in ATTACKS.items():
        assert refusal in message(controller, preview, name), name
        assert fake.get_object("apps/v1", "deployments", name, preview) is None, name
        for value in ("sk-live-prod-k8s", WEBHOOK_SECRET):
            assert value not in message(controller, preview, name)
    assert "shipyard.dev/scope=all --overwrite" in message(controller, preview, "thief")


def test_production_never_reads_a_secret_scoped_to_previews(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit(
        {"agents/bot.yaml": agent("bot", ("OPENAI_API_KEY", "sandbox", "api-key"))},
        branch="main",
    )
    upstream.push("main")
    controller = run_controller(upstream, tmp_path, fake)
    assert "sandbox is scoped to previews" in message(controller, "production", "bot")
    assert fake.get_object("apps/v1", "deployments", "bot", PRODUCTION_NS) is None


def test_a_fork_preview_gets_no_secret_copies(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit({"agents/plain.yaml": agent("plain")}, branch="main")
    upstream.push("main")
    upstream.commit(
        {"agents/fair.yaml": agent("fair", ("SENTRY_DSN", "sentry", "dsn"))}, branch="contrib"
    )
    upstream.push("contrib")
    preview = preview_of("contrib")
    controller = run_controller(upstream, tmp_path, fake, fork_branch="contrib")
    assert "withheld from pull requests from forks" in message(controller, preview, "fair")
    assert secret(fake, preview, "sentry") is None
    # An agent without secrets still gets its preview.
    assert fake.get_object("apps/v1", "deployments", "plain", preview) is not None
