"""The informer's index: a version's pods found by key as the watch moves them.

Rollout waits ask the pod informer for one agent version's pods several times a second;
the index must follow the watch exactly: a pod appears under its key when created, moves
when its labels change, and leaves when deleted or when a re-list no longer holds it.
The official client against the fake API server, with a real watch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as typed_client

from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.informer import Informer
from tests.fake_apiserver.server import FakeApiServer

k8s: Any = typed_client


def by_version(pod: dict[str, Any]) -> tuple[str, str]:
    labels = pod["metadata"].get("labels") or {}
    return (pod["metadata"].get("namespace", ""), labels.get("version", ""))


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake: FakeApiServer, tmp_path: Path) -> KubeClient:
    return KubeClient.from_config(str(fake.kubeconfig(tmp_path / "kubeconfig")))


@pytest.fixture
def pods(fake: FakeApiServer) -> Iterator[Any]:
    """Shipyard never writes pods (permissions.py): the test does, with the typed client."""
    api = k8s.ApiClient(k8s.Configuration(host=fake.url))
    core = k8s.CoreV1Api(api)
    yield core
    api.close()


def pod(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app.kubernetes.io/managed-by": "shipyard", "version": version},
        },
        "spec": {"containers": [{"name": "agent", "image": "x:1"}]},
    }


def names(informer: Informer, version: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in informer.indexed(("default", version)))


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "the informer's index never got there"
        time.sleep(0.02)


def test_the_index_follows_creates_relabels_and_deletes(client: KubeClient, pods: Any) -> None:
    def put(name: str, version: str) -> None:
        pods.patch_namespaced_pod(
            name, "default", pod(name, version), field_manager="test", force=True,
            _content_type="application/apply-patch+yaml",
        )  # fmt: skip

    put("a", "v1")
    informer = Informer(
        client, "v1", "Pod", "app.kubernetes.io/managed-by=shipyard", index=by_version
    ).start()
    try:
        eventually(lambda: names(informer, "v1") == ["a"])  # from the first list
        put("b", "v1")
        put("c", "v2")
        eventually(lambda: names(informer, "v1") == ["a", "b"] and names(informer, "v2") == ["c"])
        put("b", "v2")  # relabelled: moves from v1 to v2
        eventually(lambda: names(informer, "v1") == ["a"] and names(informer, "v2") == ["b", "c"])
        pods.delete_namespaced_pod("c", "default")
        eventually(lambda: names(informer, "v2") == ["b"])
        pods.delete_namespaced_pod("a", "default")
        eventually(lambda: names(informer, "v1") == [])
        assert names(informer, "v3") == []
    finally:
        informer.stop()
