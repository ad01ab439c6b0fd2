"""Conformance: the fake's pods look as a kubelet reports them, and pods/log answers like one.

Written from the Pod API reference (`PodStatus`, `ContainerStatus`) and `kubectl logs`'
behaviour on a cluster; driven through the official client as a controller would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as typed_client
from kubernetes.client.exceptions import ApiException

from tests.fake_apiserver import FakeApiServer, fixtures

client: Any = typed_client
fake_apiserver = fixtures.fake_apiserver
Json = dict[str, Any]


@pytest.fixture
def api(fake_apiserver: FakeApiServer) -> Iterator[Any]:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    yield api
    api.close()


def deploy(api: Any, replicas: int = 2, image: str = "nginx:1.25") -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }
    client.AppsV1Api(api).patch_namespaced_deployment(
        "web", "default", body, field_manager="t", force=True,
        _content_type="application/apply-patch+yaml",
    )  # fmt: skip


def _holds(predicate: Any, pod: Any) -> bool:
    # A pod is created before the kubelet reports on it: a status the predicate cannot
    # read yet (no containerStatuses) is "not yet", as for a watcher on a real cluster.
    try:
        return bool(predicate(pod))
    except (TypeError, AttributeError, IndexError):
        return False


def pods(api: Any, count: int, predicate: Any = lambda pod: True) -> list[Any]:
    core = client.CoreV1Api(api)
    for _ in range(200):
        found = core.list_namespaced_pod("default", label_selector="app=web").items
        if len(found) == count and all(_holds(predicate, pod) for pod in found):
            return list(found)
        time.sleep(0.05)
    raise AssertionError(f"never {count} matching pods: {found}")


def test_each_replicaset_gets_running_ready_pods_owned_by_it(api: Any) -> None:
    deploy(api, replicas=2)
    found = pods(api, 2, lambda pod: pod.status.phase == "Running")
    for pod in found:
        (owner,) = pod.metadata.owner_references
        assert owner.kind == "ReplicaSet"
        assert owner.controller
        assert pod.metadata.name.startswith(owner.name + "-")
        assert len(pod.metadata.name) == len(owner.name) + 6
        assert pod.metadata.labels["pod-template-hash"] in owner.name
        assert pod.spec.node_name
        (status,) = pod.status.container_statuses
        assert (status.name, status.ready, status.restart_count) == ("app", True, 0)
        assert status.state.running.started_at is not None
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready["Ready"] == "True"
        assert ready["PodScheduled"] == "True"


def test_scaling_down_and_deleting_remove_pods(api: Any) -> None:
    deploy(api, replicas=3)
    pods(api, 3)
    deploy(api, replicas=1)
    pods(api, 1)
    client.AppsV1Api(api).delete_namespaced_deployment("web", "default")
    pods(api, 0)


@pytest.mark.parametrize(
    ("reason", "phase", "waiting"),
    [
        ("CrashLoopBackOff", "Running", "CrashLoopBackOff"),
        ("OOMKilled", "Running", "CrashLoopBackOff"),
        ("ImagePullBackOff", "Pending", "ImagePullBackOff"),
        ("ErrImagePull", "Pending", "ErrImagePull"),
        ("CreateContainerConfigError", "Pending", "CreateContainerConfigError"),
    ],
)
def test_crash_states_look_as_the_kubelet_reports_them(
    api: Any, fake_apiserver: FakeApiServer, reason: str, phase: str, waiting: str
) -> None:
    fake_apiserver.pods.set_crash("web", reason, restarts=4)
    deploy(api, replicas=1)
    # Created Pending, then the kubelet's report: wait for the report, not the phase.
    (pod,) = pods(api, 1, lambda pod: pod.status.phase == phase and pod.status.container_statuses)
    (status,) = pod.status.container_statuses
    assert status.ready is False
    assert status.state.waiting.reason == waiting
    if reason in ("CrashLoopBackOff", "OOMKilled"):
        assert status.restart_count == 4
        terminated = status.last_state.terminated
        assert terminated.reason == ("OOMKilled" if reason == "OOMKilled" else "Error")
        assert terminated.exit_code == (137 if reason == "OOMKilled" else 1)
    # The Deployment never becomes available while its pods crash.
    deployment = client.AppsV1Api(api).read_namespaced_deployment("web", "default")
    assert not deployment.status.available_replicas


def test_unschedulable_pods_have_no_node_and_say_why(
    api: Any, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.pods.set_crash("default/web", "Unschedulable")
    deploy(api, replicas=1)
    (pod,) = pods(api, 1, lambda pod: pod.status.phase == "Pending" and pod.status.conditions)
    assert pod.spec.node_name is None
    (scheduled,) = pod.status.conditions
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert "Insufficient memory" in scheduled.message


def test_clearing_a_crash_makes_the_pods_ready_and_the_deployment_available(
    api: Any, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.pods.set_crash("web", "CrashLoopBackOff")
    deploy(api, replicas=1)
    pods(api, 1, lambda pod: not pod.status.container_statuses[0].ready)
    fake_apiserver.pods.set_crash("web", None)
    pods(api, 1, lambda pod: pod.status.container_statuses[0].ready)
    apps = client.AppsV1Api(api)
    for _ in range(200):
        if apps.read_namespaced_deployment("web", "default").status.available_replicas == 1:
            return
        time.sleep(0.05)
    raise AssertionError("the Deployment never became available")


def test_pod_logs_honour_tail_previous_timestamps_and_errors(
    api: Any, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.pods.set_logs("web", ["one", "two", "three"], previous=["crashed"])
    deploy(api, replicas=1)
    (pod,) = pods(api, 1)
    core = client.CoreV1Api(api)
    name = pod.metadata.name
    assert core.read_namespaced_pod_log(name, "default") == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log(name, "default", tail_lines=1) == "three\n"
    stamped = core.read_namespaced_pod_log(name, "default", timestamps=True)
    assert stamped.splitlines()[0].endswith("Z one")
    with pytest.raises(ApiException) as no_previous:
        core.read_namespaced_pod_log(name, "default", previous=True)
    assert no_previous.value.status == 400
    message = json.loads(no_previous.value.body or "{}")["message"]
    assert message == f'previous terminated container "app" in pod "{name}" not found'
    with pytest.raises(ApiException) as bad_container:
        core.read_namespaced_pod_log(name, "default", container="sidecar")
    assert bad_container.value.status == 400
    fake_apiserver.pods.set_crash("web", "CrashLoopBackOff")
    pods(api, 1, lambda pod: not pod.status.container_statuses[0].ready)
    assert core.read_namespaced_pod_log(name, "default", previous=True) == "crashed\n"


def test_follow_streams_new_lines_until_the_pod_goes(
    api: Any, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.pods.set_logs("web", ["first"])
    deploy(api, replicas=1)
    (pod,) = pods(api, 1)
    core = client.CoreV1Api(api)
    response = core.read_namespaced_pod_log(
        pod.metadata.name, "default", follow=True, _preload_content=False
    )
    received: list[bytes] = []

    def read() -> None:
        received.extend(response.stream(64))

    reader = threading.Thread(target=read)
    reader.start()
    fake_apiserver.pods.append_log("web", "second")
    for _ in range(200):
        if b"".join(received) == b"first\nsecond\n":
            break
        time.sleep(0.05)
    assert b"".join(received) == b"first\nsecond\n"
    core.delete_namespaced_pod(pod.metadata.name, "default")
    reader.join(timeout=10)
    assert not reader.is_alive(), "the stream did not end when its pod was deleted"


def test_rollouts_and_crashes_leave_events_as_on_a_cluster(
    api: Any, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.pods.set_crash("web", "CrashLoopBackOff")
    deploy(api, replicas=1)
    (pod,) = pods(api, 1, lambda pod: not pod.status.container_statuses[0].ready)
    core = client.CoreV1Api(api)

    def reasons() -> dict[str, Any]:
        listed = core.list_namespaced_event("default").items
        return {event.reason: event for event in listed}

    for _ in range(200):
        if {"ScalingReplicaSet", "SuccessfulCreate", "BackOff"} <= set(reasons()):
            break
        time.sleep(0.05)
    found = reasons()
    scaled = found["ScalingReplicaSet"]
    assert (scaled.involved_object.kind, scaled.involved_object.name) == ("Deployment", "web")
    assert scaled.source.component == "deployment-controller"
    assert found["SuccessfulCreate"].message == f"Created pod: {pod.metadata.name}"
    back_off = found["BackOff"]
    assert back_off.type == "Warning"
    assert back_off.involved_object.name == pod.metadata.name
    assert (
        back_off.message == f"Back-off restarting failed container app in pod {pod.metadata.name}"
    )
    count = back_off.count
    fake_apiserver.pods.set_crash("web", "CrashLoopBackOff")  # the kubelet backs off again
    for _ in range(200):
        if reasons()["BackOff"].count > count:
            return
        time.sleep(0.05)
    raise AssertionError("a repeated event did not bump its count")
