"""The Kubernetes driver's requests: what they hold, and what agents of one environment share.

The target keeps every agent's last healthy request (to roll back to), so whatever a
request holds is kept once per agent: an environment's namespace objects, the same for
all its agents, must be one shared tuple, not a copy per agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.reconciler import drivers, kube_workloads
from controller.specs.model import Agent, AgentSpec, ModelSpec, PromptSpec
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubeRequest, KubernetesTarget
from tests.fake_apiserver.server import FakeApiServer


def agent(name: str) -> Agent:
    spec = AgentSpec(
        name=name, model=ModelSpec("fake", "m"), prompt=PromptSpec("p"), image=f"acme/{name}:1"
    )
    return Agent(spec=spec, version="v1", file=f"agents/{name}.yaml", line=1, manifest={})


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[drivers.KubernetesDriver]:
    server = FakeApiServer().start()
    try:
        client = KubeClient.from_config(str(server.kubeconfig(tmp_path / "kubeconfig")))
        options = kube_workloads.ClusterOptions(gateway=("shipyard-gateway", "shipyard"))
        yield drivers.KubernetesDriver(KubernetesTarget(client), options, "repo")
    finally:
        server.stop()


def prepare(driver: drivers.KubernetesDriver, name: str, environment: str) -> KubeRequest:
    placement = drivers.Placement(agent(name), environment, "c0ffee", environment)
    return asyncio.run(driver.prepare(placement))


@pytest.mark.parametrize("environment", ["production", "feature-x"])
def test_agents_of_one_environment_share_its_namespace_objects(
    driver: drivers.KubernetesDriver, environment: str
) -> None:
    first, second = prepare(driver, "a", environment), prepare(driver, "b", environment)
    assert first.namespace_objects
    assert second.namespace_objects is first.namespace_objects
    assert first.objects != second.objects  # each agent's own objects stay its own


def test_environments_keep_namespace_objects_of_their_own(
    driver: drivers.KubernetesDriver,
) -> None:
    preview = prepare(driver, "a", "feature-x").namespace_objects
    other = prepare(driver, "a", "feature-y").namespace_objects
    assert {o["metadata"]["namespace"] for o in preview if o["kind"] != "Namespace"} != {
        o["metadata"]["namespace"] for o in other if o["kind"] != "Namespace"
    }
    assert prepare(driver, "b", "feature-x").namespace_objects is preview
