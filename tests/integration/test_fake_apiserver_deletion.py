"""Conformance: the fake API server propagates deletes as kube-apiserver and its garbage
collector do.

Written from the Kubernetes API reference (DeleteOptions `propagationPolicy`,
`orphanDependents`) and the "Garbage Collection" / "Use Cascading Deletion" pages:
Background removes the owner at once and collects dependents; Foreground marks the owner
(`deletionTimestamp`, finalizer `foregroundDeletion`), deletes its dependents first and
keeps it until no dependent with `blockOwnerDeletion: true` is left; Orphan strips the
owner's reference from its dependents and leaves them running. Driven through the
official client, and kubectl's `--cascade` where it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as typed_client
from kubernetes.client.exceptions import ApiException

from tests.fake_apiserver import FakeApiServer, fixtures

Json = dict[str, Any]
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
HOLD = "example.com/hold"
client: Any = typed_client
fake_apiserver = fixtures.fake_apiserver


@pytest.fixture
def kube(fake_apiserver: FakeApiServer) -> Iterator[Any]:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    yield api
    api.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def running_deployment(kube: Any, replicas: int = 2) -> tuple[Any, Any]:
    """A Deployment `web` with its ReplicaSet and `replicas` pods; (ReplicaSet, apps)."""
    apps = client.AppsV1Api(kube)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    }
    apps.patch_namespaced_deployment(
        "web", "default", body, field_manager="test", force=True, _content_type=APPLY
    )
    core = client.CoreV1Api(kube)
    wait_for(
        lambda: len(core.list_namespaced_pod("default", label_selector="app=web").items) == replicas
    )
    (replica_set,) = apps.list_namespaced_replica_set("default").items
    return replica_set, apps


def pods(kube: Any) -> list[Any]:
    items: list[Any] = (
        client.CoreV1Api(kube).list_namespaced_pod("default", label_selector="app=web").items
    )
    return items


def hold(apps: Any, replica_set_name: str) -> None:
    apps.patch_namespaced_replica_set(
        replica_set_name, "default", {"metadata": {"finalizers": [HOLD]}}, _content_type=MERGE
    )


def release(apps: Any, replica_set_name: str) -> None:
    apps.patch_namespaced_replica_set(
        replica_set_name,
        "default",
        [{"op": "remove", "path": "/metadata/finalizers/" + "0"}],
        _content_type="application/json-patch+json",
    )


def test_background_deletes_the_owner_at_once_and_collects_its_dependents(kube: Any) -> None:
    replica_set, apps = running_deployment(kube)
    answer = apps.delete_namespaced_deployment("web", "default", propagation_policy="Background")
    # The typed client hands back the decoded body as a dict.
    assert (answer["kind"], answer["status"]) == ("Status", "Success")
    assert gone(lambda: apps.read_namespaced_deployment("web", "default"))
    wait_for(
        lambda: gone(lambda: apps.read_namespaced_replica_set(replica_set.metadata.name, "default"))
    )
    wait_for(lambda: pods(kube) == [])


def test_foreground_marks_the_owner_and_waits_for_blocking_dependents(kube: Any) -> None:
    replica_set, apps = running_deployment(kube)
    name = replica_set.metadata.name
    assert replica_set.metadata.owner_references[0].block_owner_deletion is True
    hold(apps, name)  # the ReplicaSet cannot go until the test releases it

    response = apps.delete_namespaced_deployment(
        "web", "default", body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    # The answer is the owner itself, marked for deletion, not a Status.
    assert response["kind"] == "Deployment"
    assert response["metadata"]["deletionTimestamp"]
    assert response["metadata"]["finalizers"] == ["foregroundDeletion"]

    # Dependents go first: the pods, then the ReplicaSet up to its own finalizer.
    wait_for(lambda: pods(kube) == [])
    wait_for(
        lambda: (
            "foregroundDeletion"
            not in (apps.read_namespaced_replica_set(name, "default").metadata.finalizers or [])
        )
    )
    held = apps.read_namespaced_replica_set(name, "default")
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [HOLD]
    owner = apps.read_namespaced_deployment("web", "default")
    assert owner.metadata.finalizers == ["foregroundDeletion"]  # still waiting for it

    release(apps, name)
    wait_for(lambda: gone(lambda: apps.read_namespaced_replica_set(name, "default")))
    wait_for(lambda: gone(lambda: apps.read_namespaced_deployment("web", "default")))


def test_foreground_does_not_wait_for_dependents_that_do_not_block(kube: Any) -> None:
    replica_set, apps = running_deployment(kube, replicas=1)
    owner = apps.read_namespaced_deployment("web", "default")
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "side",
                "finalizers": [HOLD],
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": owner.metadata.uid,
                    }
                ],
            }
        },
    )
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    wait_for(lambda: gone(lambda: apps.read_namespaced_deployment("web", "default")))
    side = core.read_namespaced_config_map("side", "default")
    assert side.metadata.deletion_timestamp is not None  # deleted, held by its finalizer
    assert gone(lambda: apps.read_namespaced_replica_set(replica_set.metadata.name, "default"))


def test_orphan_strips_owner_references_and_keeps_the_dependents(kube: Any) -> None:
    replica_set, apps = running_deployment(kube)
    answer = apps.delete_namespaced_deployment(
        "web", "default", body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    assert answer["kind"] == "Deployment"
    assert answer["metadata"]["finalizers"] == ["orphan"]
    wait_for(lambda: gone(lambda: apps.read_namespaced_deployment("web", "default")))
    kept = apps.read_namespaced_replica_set(replica_set.metadata.name, "default")
    assert kept.metadata.owner_references is None
    assert kept.metadata.deletion_timestamp is None
    assert len(pods(kube)) == 2  # the pods keep their own owner, the ReplicaSet


def test_orphan_dependents_false_is_foreground_answered_202(kube: Any) -> None:
    running_deployment(kube, replicas=1)
    apps = client.AppsV1Api(kube)
    _, status, _ = apps.delete_namespaced_deployment_with_http_info(
        "web", "default", body={"orphanDependents": False}
    )
    # orphanDependents: false is the deprecated spelling of Background; answered 202
    # only while the object is still there (it is not: no finalizers).
    assert status == 200
    assert gone(lambda: apps.read_namespaced_deployment("web", "default"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"propagationPolicy": "Sideways"},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
            '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"',
        ),
        (
            {"propagationPolicy": "Orphan", "orphanDependents": True},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: '
            '"Orphan": orphanDependents and deletionPropagation cannot be both set',
        ),
    ],
)
def test_invalid_delete_options_are_422(kube: Any, options: Json, message: str) -> None:
    running_deployment(kube, replicas=1)
    apps = client.AppsV1Api(kube)
    with pytest.raises(ApiException) as refused:
        apps.delete_namespaced_deployment("web", "default", body=options)
    assert refused.value.status == 422
    assert json.loads(refused.value.body or "{}")["message"] == message
    assert apps.read_namespaced_deployment("web", "default").metadata.deletion_timestamp is None


@pytest.fixture
def kubectl(fake_apiserver: FakeApiServer, tmp_path: Path) -> Callable[..., str]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = fake_apiserver.kubeconfig(tmp_path / "kubeconfig")

    def run(*args: str) -> str:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_kubectl_cascade_foreground_and_orphan(kube: Any, kubectl: Callable[..., str]) -> None:
    replica_set, apps = running_deployment(kube, replicas=1)
    # kubectl waits until the object is gone, so it returns after the dependents went.
    kubectl("delete", "deployment", "web", "--cascade=orphan")
    kept = apps.read_namespaced_replica_set(replica_set.metadata.name, "default")
    assert kept.metadata.owner_references is None
    kubectl("delete", "replicaset", replica_set.metadata.name, "--cascade=foreground")
    assert pods(kube) == []


def test_delete_collection_honours_the_propagation_policy(kube: Any) -> None:
    replica_set, apps = running_deployment(kube, replicas=1)
    apps.delete_collection_namespaced_deployment("default", propagation_policy="Orphan")
    wait_for(lambda: gone(lambda: apps.read_namespaced_deployment("web", "default")))
    kept = apps.read_namespaced_replica_set(replica_set.metadata.name, "default")
    assert kept.metadata.owner_references is None


def test_delete_options_are_checked_before_the_object_is_looked_up(kube: Any) -> None:
    apps = client.AppsV1Api(kube)
    with pytest.raises(ApiException) as refused:
        apps.delete_namespaced_deployment("absent", "default", propagation_policy="Sideways")
    assert refused.value.status == 422


def test_deleting_a_pod_answers_with_the_pod_marked_for_deletion(kube: Any) -> None:
    running_deployment(kube, replicas=1)
    (pod,) = pods(kube)
    answer = client.CoreV1Api(kube).delete_namespaced_pod(pod.metadata.name, "default")
    # A pod ends gracefully: the answer is the pod, not a Status (the typed client decodes
    # a V1Pod), with the grace period it was given.
    assert answer.kind == "Pod"
    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 30
