"""The fake API server behaves like kube-apiserver where Shipyard could tell the difference.

Driven only as Shipyard and people drive a cluster: the official `kubernetes` client
(`ApiClient(Configuration(host=url))`, typed APIs, `watch.Watch`, `DynamicClient`) and
real `kubectl` in a subprocess. Each test names the behaviour it pins; BEHAVIOURS.md is
the list these tests keep honest.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as typed_client
from kubernetes import config as untyped_config
from kubernetes import dynamic as untyped_dynamic
from kubernetes import watch as untyped_watch
from kubernetes.client.exceptions import ApiException

from tests.fake_apiserver import FakeApiServer, crds, fixtures

Json = dict[str, Any]
APPLY = "application/apply-patch+yaml"
MANAGED = {"app.kubernetes.io/managed-by": "shipyard"}

fake_apiserver = fixtures.fake_apiserver  # the exported fixture, used as tests would
# The client's annotations ask for model objects; it also takes plain dicts, which is
# how Shipyard (and these tests) send bodies, so the typed surface is used as Any here.
client: Any = typed_client
config: Any = untyped_config
dynamic: Any = untyped_dynamic
watch: Any = untyped_watch


# -- helpers ---------------------------------------------------------------------------


@pytest.fixture
def kube(fake_apiserver: FakeApiServer) -> Iterator[client.ApiClient]:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    yield api
    api.close()


def drained(stream: Iterator[Any], within: float = 30.0) -> list[Any]:
    """Everything `stream` yields until it ends; fails if it has not ended `within` seconds."""
    items: list[Any] = []
    reader = threading.Thread(target=lambda: items.extend(stream), daemon=True)
    reader.start()
    reader.join(within)
    assert not reader.is_alive(), f"the stream did not end within {within}s"
    return items


def status_of(exc: ApiException) -> Json:
    body: Json = json.loads(exc.body or "{}")
    return body


def raw(response: Any) -> Json:
    """JSON of a `_preload_content=False` response."""
    body: Json = json.loads(response.data)
    return body


def deployment(
    name: str = "web",
    namespace: str = "default",
    *,
    image: str = "nginx:1.25",
    replicas: int | None = 1,
    env: list[Json] | None = None,
    labels: dict[str, str] | None = None,
) -> Json:
    container: Json = {"name": "app", "image": image}
    if env is not None:
        container["env"] = env
    spec: Json = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name, **(labels or {})},
        },
        "spec": spec,
    }


def apply_deployment(
    kube: client.ApiClient, body: Json, *, manager: str = "shipyard", force: bool = True
) -> tuple[Any, int]:
    apps = client.AppsV1Api(kube)
    data, code, _ = apps.patch_namespaced_deployment_with_http_info(
        body["metadata"]["name"],
        body["metadata"]["namespace"],
        body,
        field_manager=manager,
        force=force,
        _content_type=APPLY,
    )
    return data, code


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def condition(dep: Any, kind: str) -> Any:
    return next(c for c in dep.status.conditions or [] if c.type == kind)


def condition_reason(dep: Any, kind: str) -> str | None:
    """The condition's reason, or None while the controller has not written it yet."""
    found = [c.reason for c in dep.status.conditions or [] if c.type == kind]
    return found[0] if found else None


# -- create / get / list / replace / delete --------------------------------------------


def test_crud_answers_with_real_status_codes_and_status_bodies(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    body = {"metadata": {"name": "settings"}, "data": {"mode": "a"}}
    created, code, _ = core.create_namespaced_config_map_with_http_info("default", body)
    assert code == 201
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", body)
    assert exists.value.status == 409
    assert status_of(exists.value)["reason"] == "AlreadyExists"
    assert status_of(exists.value)["message"] == 'configmaps "settings" already exists'

    got, code, _ = core.read_namespaced_config_map_with_http_info("settings", "default")
    assert code == 200
    assert got.metadata.resource_version == created.metadata.resource_version

    stale = {**body, "metadata": {"name": "settings", "resourceVersion": "1"}}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("settings", "default", stale)
    assert conflict.value.status == 409
    assert status_of(conflict.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(conflict.value)["message"]

    current = {
        "metadata": {"name": "settings", "resourceVersion": got.metadata.resource_version},
        "data": {"mode": "b"},
    }
    replaced, code, _ = core.replace_namespaced_config_map_with_http_info(
        "settings", "default", current
    )
    assert code == 200
    assert replaced.data == {"mode": "b"}
    assert int(replaced.metadata.resource_version) > int(got.metadata.resource_version)
    unconditional = {"metadata": {"name": "settings"}, "data": {"mode": "c"}}
    assert core.replace_namespaced_config_map("settings", "default", unconditional).data == {
        "mode": "c"
    }

    _, code, _ = core.delete_namespaced_config_map_with_http_info("settings", "default")
    assert code == 200
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("settings", "default")
    assert missing.value.status == 404
    assert status_of(missing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "settings" not found',
        "reason": "NotFound",
        "details": {"name": "settings", "kind": "configmaps"},
        "code": 404,
    }


def test_list_has_list_kind_resource_version_no_item_kinds_and_stable_order(
    kube: client.ApiClient,
) -> None:
    core = client.CoreV1Api(kube)
    for ns in ("b-team", "a-team"):
        core.create_namespace({"metadata": {"name": ns}})
        for name in ("zeta", "alpha"):
            core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": MANAGED}})
    listed = raw(
        core.list_config_map_for_all_namespaces(
            label_selector="app.kubernetes.io/managed-by=shipyard", _preload_content=False
        )
    )
    assert listed["kind"] == "ConfigMapList"
    assert listed["apiVersion"] == "v1"
    assert int(listed["metadata"]["resourceVersion"]) > 0
    assert all("kind" not in i and "apiVersion" not in i for i in listed["items"])
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("a-team", "alpha"),
        ("a-team", "zeta"),
        ("b-team", "alpha"),
        ("b-team", "zeta"),
    ]
    first = core.list_config_map_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by", limit=3
    )
    assert len(first.items) == 3
    rest = core.list_config_map_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by", limit=3, _continue=first.metadata._continue
    )
    assert [i.metadata.name for i in rest.items] == ["zeta"]


def test_create_validates_like_the_real_server(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    cases = [
        ({"metadata": {}}, "metadata.name: Required value: name or generateName is required"),
        ({"metadata": {"name": "Bad_Name"}}, 'metadata.name: Invalid value: "Bad_Name"'),
        ({"metadata": {"name": "ok", "labels": {"a": "not ok!"}}}, "metadata.labels: Invalid"),
    ]
    for body, message in cases:
        with pytest.raises(ApiException) as invalid:
            core.create_namespaced_config_map("default", body)
        assert invalid.value.status == 422
        assert status_of(invalid.value)["reason"] == "Invalid"
        assert message in status_of(invalid.value)["message"]
    generated = core.create_namespaced_config_map("default", {"metadata": {"generateName": "x-"}})
    assert generated.metadata.name.startswith("x-")
    assert len(generated.metadata.name) == 7
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})
    assert no_namespace.value.status == 404
    assert status_of(no_namespace.value)["message"] == 'namespaces "nowhere" not found'


def test_resource_versions_are_one_global_monotonic_counter(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    versions = [
        int(
            core.create_namespaced_config_map(
                "default", {"metadata": {"name": f"c{i}"}}
            ).metadata.resource_version
        )
        for i in range(3)
    ]
    versions.append(
        int(
            core.create_namespaced_secret(
                "default", {"metadata": {"name": "s"}}
            ).metadata.resource_version
        )
    )
    assert versions == sorted(versions)
    assert len(set(versions)) == 4


# -- server-side apply -----------------------------------------------------------------


def test_apply_creates_with_201_then_updates_with_200_and_records_ownership(
    kube: client.ApiClient,
) -> None:
    created, code = apply_deployment(kube, deployment(env=[{"name": "A", "value": "1"}]))
    assert code == 201
    updated, code = apply_deployment(kube, deployment(image="nginx:1.26"))
    assert code == 200
    assert updated.spec.template.spec.containers[0].image == "nginx:1.26"
    entry = next(m for m in updated.metadata.managed_fields if m.manager == "shipyard")
    assert entry.operation == "Apply"
    assert entry.fields_type == "FieldsV1"
    containers = entry.fields_v1["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers == {'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}
    assert created.metadata.uid == updated.metadata.uid


def test_repeated_apply_is_a_true_noop(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    fake_apiserver.deployments.set_mode("off")
    first, _ = apply_deployment(kube, deployment())
    fake_apiserver.requests.clear()
    again, code = apply_deployment(kube, deployment())
    assert code == 200
    assert again.metadata.resource_version == first.metadata.resource_version
    assert again.metadata.managed_fields[0].time == first.metadata.managed_fields[0].time
    [call] = fake_apiserver.requests.writes()
    assert (call.method, call.content_type) == ("PATCH", APPLY)
    assert call.params["fieldManager"] == "shipyard"


def test_apply_leaves_defaulted_fields_to_the_server(kube: client.ApiClient) -> None:
    applied, _ = apply_deployment(kube, deployment(replicas=None))
    assert applied.spec.replicas == 1
    assert applied.spec.strategy.type == "RollingUpdate"
    assert applied.spec.progress_deadline_seconds == 600
    container = applied.spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert container.termination_message_path == "/dev/termination-log"
    three, _ = apply_deployment(kube, deployment(replicas=3))
    assert three.spec.replicas == 3
    back, _ = apply_deployment(kube, deployment(replicas=None))
    assert back.spec.replicas == 1  # dropped by its only manager, then defaulted again


def test_generation_moves_only_with_the_spec(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    fake_apiserver.deployments.set_mode("manual")
    apps = client.AppsV1Api(kube)
    first, _ = apply_deployment(kube, deployment())
    assert first.metadata.generation == 1
    labelled, _ = apply_deployment(kube, deployment(labels={"team": "a"}))
    assert labelled.metadata.generation == 1
    apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"observedGeneration": 1, "replicas": 1}}
    )
    assert apps.read_namespaced_deployment("web", "default").metadata.generation == 1
    changed, _ = apply_deployment(kube, deployment(image="nginx:1.27", labels={"team": "a"}))
    assert changed.metadata.generation == 2


def test_fields_a_manager_stops_sending_are_removed_unless_someone_else_owns_them(
    kube: client.ApiClient,
) -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    apply_deployment(kube, deployment(env=env, labels={"tier": "web", "team": "a"}))
    # Another manager sets label team (same value) and so co-owns it.
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
    }
    apply_deployment(kube, other, manager="platform", force=False)
    trimmed, _ = apply_deployment(kube, deployment(env=[{"name": "A", "value": "1"}]))
    assert [e.name for e in trimmed.spec.template.spec.containers[0].env] == ["A"]
    assert trimmed.metadata.labels == {"app": "web", "team": "a"}
    none, _ = apply_deployment(kube, deployment())
    assert none.spec.template.spec.containers[0].env is None


def test_apply_conflicts_with_another_managers_field_unless_forced(
    kube: client.ApiClient,
) -> None:
    apply_deployment(kube, deployment(replicas=2, image="nginx:1.25"))
    with pytest.raises(ApiException) as conflict:
        apply_deployment(
            kube, deployment(replicas=5, image="nginx:1.26"), manager="hpa", force=False
        )
    assert conflict.value.status == 409
    body = status_of(conflict.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Apply failed with 2 conflicts: conflicts with "shipyard":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="app"].image'
    )
    assert {c["field"] for c in body["details"]["causes"]} == {
        ".spec.replicas",
        '.spec.template.spec.containers[name="app"].image',
    }
    # The same values are not a conflict: the field is then shared.
    apply_deployment(kube, deployment(replicas=2), manager="hpa", force=False)
    forced, _ = apply_deployment(kube, deployment(replicas=5), manager="hpa", force=True)
    assert forced.spec.replicas == 5
    owners = {m.manager: m.fields_v1 for m in forced.metadata.managed_fields}
    assert "f:replicas" not in owners["shipyard"]["f:spec"]
    assert "f:replicas" in owners["hpa"]["f:spec"]


def test_apply_merges_associative_lists_by_key(kube: client.ApiClient) -> None:
    apply_deployment(kube, deployment(env=[{"name": "A", "value": "1"}]))
    sidecar = deployment(env=[{"name": "B", "value": "2"}])
    sidecar["spec"]["template"]["spec"]["containers"].append({"name": "proxy", "image": "envoy"})
    merged, _ = apply_deployment(kube, sidecar, manager="injector", force=False)
    containers = merged.spec.template.spec.containers
    assert [c.name for c in containers] == ["app", "proxy"]
    assert [(e.name, e.value) for e in containers[0].env] == [("A", "1"), ("B", "2")]


def test_apply_needs_a_field_manager_and_unknown_patch_types_are_refused(
    kube: client.ApiClient,
) -> None:
    apps = client.AppsV1Api(kube)
    with pytest.raises(ApiException) as missing:
        apps.patch_namespaced_deployment("web", "default", deployment(), _content_type=APPLY)
    assert missing.value.status == 422
    assert (
        "fieldManager: Required value: is required for apply patch"
        in status_of(missing.value)["message"]
    )
    apply_deployment(kube, deployment())
    with pytest.raises(ApiException) as unknown:
        apps.patch_namespaced_deployment("web", "default", {}, _content_type="application/json")
    assert unknown.value.status == 415
    assert status_of(unknown.value)["reason"] == "UnsupportedMediaType"


# -- other writes ----------------------------------------------------------------------


def test_strategic_merge_and_merge_patches(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    core = client.CoreV1Api(kube)
    apply_deployment(kube, deployment(env=[{"name": "A", "value": "1"}]))
    # A dict body without _content_type is sent as a strategic merge patch.
    patched = apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}
                }
            }
        },
    )
    assert [e.name for e in patched.spec.template.spec.containers[0].env] == ["A", "B"]
    assert patched.spec.template.spec.containers[0].image == "nginx:1.25"

    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "m"}, "data": {"a": "1", "b": "2"}}
    )
    merged = core.patch_namespaced_config_map(
        "m",
        "default",
        {"data": {"a": None, "c": "3"}},
        _content_type="application/merge-patch+json",
    )
    assert merged.data == {"b": "2", "c": "3"}
    json_patched = core.patch_namespaced_config_map(
        "m",
        "default",
        [{"op": "replace", "path": "/data/b", "value": "9"}],
        _content_type="application/json-patch+json",
    )
    assert json_patched.data == {"b": "9", "c": "3"}


def test_status_subresource_is_separate_from_the_spec(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    fake_apiserver.deployments.set_mode("manual")
    apps = client.AppsV1Api(kube)
    apply_deployment(kube, deployment(replicas=2))
    # The fake's Deployment controller may still stamp the object (revision annotation)
    # right after the apply; like any client, read-modify-write again on a 409.
    for _ in range(10):
        body = apps.read_namespaced_deployment("web", "default")
        body.spec.replicas = 7
        body.status = client.V1DeploymentStatus(replicas=2, ready_replicas=2, observed_generation=1)
        try:
            after_status = apps.replace_namespaced_deployment_status("web", "default", body)
            break
        except client.exceptions.ApiException as error:
            if error.status != 409:
                raise
            time.sleep(0.05)
    else:
        raise AssertionError("the status write kept conflicting")
    assert after_status.spec.replicas == 2
    assert after_status.status.ready_replicas == 2
    with_status = deployment(replicas=2)
    with_status["status"] = {"readyReplicas": 0, "replicas": 9}
    after_apply, _ = apply_deployment(kube, with_status)
    assert after_apply.status.ready_replicas == 2
    assert after_apply.status.replicas == 2


def test_finalizers_hold_deletion_and_dependents_are_collected(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("held", "default")
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map(
        "held",
        "default",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", "default")
    assert gone.value.status == 404

    apps = client.AppsV1Api(kube)
    apply_deployment(kube, deployment())
    wait_for(lambda: len(apps.list_namespaced_replica_set("default").items) == 1)
    apps.delete_namespaced_deployment("web", "default")
    assert apps.list_namespaced_replica_set("default").items == []


def test_dry_run_scale_and_pod_logs(fake_apiserver: FakeApiServer, kube: client.ApiClient) -> None:
    fake_apiserver.deployments.set_mode("manual")
    apps = client.AppsV1Api(kube)
    core = client.CoreV1Api(kube)
    dry, code, _ = apps.patch_namespaced_deployment_with_http_info(
        "web", "default", deployment(), field_manager="shipyard", dry_run="All", _content_type=APPLY
    )
    assert code == 201
    assert dry.spec.replicas == 1
    with pytest.raises(ApiException) as absent:
        apps.read_namespaced_deployment("web", "default")
    assert absent.value.status == 404
    apply_deployment(kube, deployment(replicas=2))
    scale = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    assert (scale.spec.replicas, scale.status.selector) == (4, "app=web")
    scaled = apps.read_namespaced_deployment("web", "default")
    assert (scaled.spec.replicas, scaled.metadata.generation) == (4, 2)
    with pytest.raises(ApiException) as no_pod:
        core.read_namespaced_pod_log("web-123", "default")
    assert no_pod.value.status == 404
    assert status_of(no_pod.value)["message"] == 'pods "web-123" not found'


def test_secret_string_data_is_stored_as_base64_data(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    secret = core.create_namespaced_secret(
        "default", {"metadata": {"name": "token"}, "stringData": {"key": "s3cret"}}
    )
    assert secret.string_data is None
    assert secret.type == "Opaque"
    assert base64.b64decode(secret.data["key"]) == b"s3cret"


# -- selectors -------------------------------------------------------------------------

LABELLED = {
    "a": {"app": "web", "tier": "front"},
    "b": {"app": "web", "tier": "back"},
    "c": {"app": "api"},
    "d": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front,back)", ["a", "b"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("app=web,tier!=back", ["a"]),
        ("app in (web, api), !tier", ["c"]),
    ],
    ids=str,
)
def test_label_selector_syntax(kube: client.ApiClient, selector: str, expected: list[str]) -> None:
    core = client.CoreV1Api(kube)
    for name, labels in LABELLED.items():
        core.create_namespaced_secret("default", {"metadata": {"name": name, "labels": labels}})
    found = core.list_namespaced_secret("default", label_selector=selector)
    assert [i.metadata.name for i in found.items] == expected


def test_bad_selectors_are_400s_and_field_selectors_work(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map("default", label_selector="app in web")
    assert bad.value.status == 400
    by_name = core.list_namespace(field_selector="metadata.name=kube-system")
    assert [i.metadata.name for i in by_name.items] == ["kube-system"]
    with pytest.raises(ApiException) as unsupported:
        core.list_namespaced_config_map("default", field_selector="spec.nope=1")
    assert unsupported.value.status == 400
    assert status_of(unsupported.value)["message"] == "field label not supported: spec.nope"


# -- watches ---------------------------------------------------------------------------


def test_watch_resumes_after_a_resource_version_and_ends_on_timeout(
    kube: client.ApiClient,
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    mark = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    core.patch_namespaced_config_map("after", "default", {"data": {"x": "1"}})
    core.delete_namespaced_config_map("before", "default")
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=mark, timeout_seconds=1
    )
    events = [(e["type"], e["object"].metadata.name) for e in drained(stream)]
    assert events == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before")]


def test_watch_without_resource_version_starts_with_current_objects(
    kube: client.ApiClient,
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map("default", {"metadata": {"name": "x", "labels": MANAGED}})
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="app.kubernetes.io/managed-by=shipyard",
            timeout_seconds=1,
        )
    )
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "x")]


def test_watch_from_a_compacted_resource_version_is_410() -> None:
    with FakeApiServer(history_size=5) as server:
        core = client.CoreV1Api(client.ApiClient(client.Configuration(host=server.url)))
        mark = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(8):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as gone:
            list(
                watch.Watch().stream(
                    core.list_namespaced_config_map,
                    "default",
                    resource_version=mark,
                    timeout_seconds=1,
                )
            )
        assert gone.value.status == 410
        assert "Expired: too old resource version" in gone.value.reason


def test_an_object_leaving_the_selector_arrives_as_deleted(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map("default", {"metadata": {"name": "x", "labels": MANAGED}})
    mark = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map(
        "x", "default", {"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}}
    )
    core.patch_namespaced_config_map("x", "default", {"metadata": {"labels": MANAGED}})
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="app.kubernetes.io/managed-by=shipyard",
            resource_version=mark,
            timeout_seconds=1,
        )
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    assert events[0]["object"].metadata.labels == MANAGED  # the last state that matched
    assert int(events[0]["object"].metadata.resource_version) > int(mark)


def test_dropped_watches_end_the_stream(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    # Far longer than `drained` waits: only the drop can end this stream in time.
    stream = watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=600)
    assert next(stream)["type"] == "ADDED"  # kube-root-ca.crt
    wait_for(lambda: fake_apiserver.store.open_watches() == 1)
    assert fake_apiserver.drop_watches("graceful") == 1
    assert drained(stream) == []


# -- namespaces ------------------------------------------------------------------------


def test_namespaces_terminate_forbid_new_content_then_cascade(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    ns = core.create_namespace({"metadata": {"name": "preview-a"}})
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "preview-a"}
    assert ns.status.phase == "Active"
    core.create_namespaced_config_map("preview-a", {"metadata": {"name": "c"}})
    apply_deployment(kube, deployment(namespace="preview-a"))
    wait_for(lambda: bool(core.list_namespaced_service_account("preview-a").items))

    deleted = raw(core.delete_namespace("preview-a", _preload_content=False))
    assert deleted["status"]["phase"] == "Terminating"
    assert core.read_namespace("preview-a").metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as forbidden:
        core.create_namespaced_config_map("preview-a", {"metadata": {"name": "late"}})
    assert forbidden.value.status == 403
    assert status_of(forbidden.value)["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace preview-a '
        "because it is being terminated"
    )

    def gone() -> bool:
        try:
            core.read_namespace("preview-a")
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone)
    assert client.AppsV1Api(kube).list_deployment_for_all_namespaces().items == []
    assert (
        core.list_config_map_for_all_namespaces(
            field_selector=("metadata.namespace=preview-a")
        ).items
        == []
    )


# -- leases, CRDs, discovery -----------------------------------------------------------


def test_lease_updates_need_the_current_resource_version(kube: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(kube)
    lease = leases.create_namespaced_lease(
        "default",
        {
            "metadata": {"name": "shipyard-leader"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    renewed = leases.replace_namespaced_lease("shipyard-leader", "default", lease)
    assert renewed.spec.holder_identity == "b"
    lease.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        leases.replace_namespaced_lease("shipyard-leader", "default", lease)
    assert stale.value.status == 409
    assert leases.read_namespaced_lease("shipyard-leader", "default").spec.holder_identity == "b"


def test_custom_resources_are_served_once_their_crd_exists(
    kube: client.ApiClient, tmp_path: Path
) -> None:
    client.ApiextensionsV1Api(kube).create_custom_resource_definition(crds.SERVICE_MONITOR)
    custom = client.CustomObjectsApi(kube)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "shipyard", "namespace": "default"},
        "spec": {"endpoints": [{"port": "metrics"}]},
    }
    args = ("monitoring.coreos.com", "v1", "default", "servicemonitors", "shipyard", monitor)
    _, code, _ = custom.patch_namespaced_custom_object_with_http_info(
        *args, field_manager="shipyard", force=True, _content_type=APPLY
    )
    assert code == 201
    updated = custom.patch_namespaced_custom_object(
        *args, field_manager="shipyard", force=True, _content_type=APPLY
    )
    assert updated["spec"] == {"endpoints": [{"port": "metrics"}]}
    assert updated["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as smp:
        custom.patch_namespaced_custom_object(
            *args[:5], {"spec": {}}, _content_type="application/strategic-merge-patch+json"
        )
    assert smp.value.status == 415

    discovered = dynamic.DynamicClient(kube, cache_file=str(tmp_path / "discovery.json"))
    monitors = discovered.resources.get(
        api_version="monitoring.coreos.com/v1", kind="ServiceMonitor"
    )
    assert monitors.namespaced
    assert [i.metadata.name for i in monitors.get(namespace="default").items] == ["shipyard"]
    assert discovered.resources.get(api_version="apps/v1", kind="Deployment").short_names == [
        "deploy"
    ]


# -- the deployment controller ---------------------------------------------------------


def test_deployments_become_ready_with_revisions(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    apply_deployment(kube, deployment(replicas=2))

    def ready() -> bool:
        status = apps.read_namespaced_deployment("web", "default").status
        return bool(status.observed_generation == 1 and status.available_replicas == 2)

    wait_for(ready)
    dep = apps.read_namespaced_deployment("web", "default")
    assert (dep.status.replicas, dep.status.updated_replicas, dep.status.ready_replicas) == (
        2,
        2,
        2,
    )
    assert condition(dep, "Available").status == "True"
    progressing = condition(dep, "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    apply_deployment(kube, deployment(replicas=2, image="nginx:1.26"))
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("web", "default").metadata.annotations[
                "deployment.kubernetes.io/revision"
            ]
            == "2"
        )
    )
    revisions = sorted(
        rs.metadata.annotations["deployment.kubernetes.io/revision"]
        for rs in apps.list_namespaced_replica_set("default").items
    )
    assert revisions == ["1", "2"]


def test_a_stuck_deployment_exceeds_its_progress_deadline(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    fake_apiserver.deployments.set_mode("stuck", "default/web", deadline=0.3)
    apps = client.AppsV1Api(kube)
    apply_deployment(kube, deployment())
    wait_for(
        lambda: (
            condition_reason(apps.read_namespaced_deployment("web", "default"), "Progressing")
            == "ProgressDeadlineExceeded"
        )
    )
    dep = apps.read_namespaced_deployment("web", "default")
    assert condition(dep, "Progressing").status == "False"
    assert not dep.status.available_replicas
    fake_apiserver.deployments.set_mode("ready", "default/web")
    wait_for(
        lambda: apps.read_namespaced_deployment("web", "default").status.available_replicas == 1
    )


def test_manual_mode_leaves_status_to_the_test(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    fake_apiserver.deployments.set_mode("manual")
    apps = client.AppsV1Api(kube)
    apply_deployment(kube, deployment())
    wait_for(lambda: bool(apps.list_namespaced_replica_set("default").items))
    assert apps.read_namespaced_deployment("web", "default").status.conditions is None


# -- faults and the request log --------------------------------------------------------


def test_injected_faults_reach_the_client(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    fake_apiserver.faults.fail(1, 500, method="GET", path="/configmaps")
    with pytest.raises(ApiException) as failed:
        core.list_namespaced_config_map("default")
    assert failed.value.status == 500
    assert status_of(failed.value)["reason"] == "InternalError"
    # urllib3 itself retries idempotent calls answered 429 + Retry-After (up to 3 times);
    # POST and PATCH (creates, applies) reach the caller.
    fake_apiserver.faults.throttle(1, retry_after=3, method="POST")
    with pytest.raises(ApiException) as throttled:
        core.create_namespaced_config_map("default", {"metadata": {"name": "throttled"}})
    assert throttled.value.status == 429
    assert throttled.value.headers is not None
    assert throttled.value.headers["Retry-After"] == "3"
    fake_apiserver.faults.fail(1, 500, method="POST", after=True)
    with pytest.raises(ApiException):
        core.create_namespaced_config_map("default", {"metadata": {"name": "lost-answer"}})
    assert core.read_namespaced_config_map("lost-answer", "default").metadata.name
    # Held back far longer than a client that gives up after 0.3 s waits; urllib, unlike
    # the Kubernetes client, does not retry, so the timeout reaches this test.
    fake_apiserver.faults.delay(5.0, method="GET")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(
            fake_apiserver.url + "/api/v1/namespaces/default/configmaps", timeout=0.3
        )
    assert fake_apiserver.faults.pending() == 0
    assert core.list_namespaced_config_map("default").items is not None  # answered at once


def test_the_request_log_counts_every_call(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    fake_apiserver.requests.clear()
    core.list_namespaced_config_map("default")
    core.read_namespace("default")
    assert fake_apiserver.requests.writes() == []
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    [write] = fake_apiserver.requests.writes()
    assert (write.method, write.path, write.status) == (
        "POST",
        "/api/v1/namespaces/default/configmaps",
        201,
    )
    assert len(fake_apiserver.requests.all()) == 3


def test_the_admin_endpoint_controls_a_server_in_another_process(
    fake_apiserver: FakeApiServer, kube: client.ApiClient
) -> None:
    def admin(method: str, path: str, body: Json | None = None) -> Json:
        request = urllib.request.Request(
            fake_apiserver.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: Json = json.loads(response.read())
            return answer

    admin("DELETE", "/_fake/requests")
    admin("POST", "/_fake/faults", {"kind": "error", "status": 503, "method": "GET"})
    with pytest.raises(ApiException) as failed:
        client.CoreV1Api(kube).list_namespace()
    assert failed.value.status == 503
    admin("PUT", "/_fake/deployments/mode", {"mode": "manual"})
    apply_deployment(kube, deployment())
    calls = admin("GET", "/_fake/requests")["requests"]
    assert [(c["method"], c["status"]) for c in calls] == [("GET", 503), ("PATCH", 201)]


# -- by hand, and kubectl --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_started_by_hand_it_writes_a_kubeconfig_the_client_loads(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_apiserver",
            "--port",
            str(port),
            "--kubeconfig-out",
            str(kubeconfig),
            "--ready-delay",
            "0.1",
            "--servicemonitors",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        # Announced once written: the file exists (empty) a moment before it is complete.
        assert "kubeconfig written" in process.stdout.readline()
        api = config.new_client_from_config(str(kubeconfig))
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert "kube-system" in names
        monitors = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", "default", "servicemonitors"
        )
        assert monitors["items"] == []
        apply_deployment(api, deployment())
        wait_for(
            lambda: (
                client.AppsV1Api(api)
                .read_namespaced_deployment("web", "default")
                .status.available_replicas
                == 1
            )
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def kubectl(fake_apiserver: FakeApiServer, tmp_path: Path) -> Callable[..., str]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = fake_apiserver.kubeconfig(tmp_path / "kubeconfig")

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "cache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_kubectl_lists_what_the_client_made(
    kube: client.ApiClient, kubectl: Callable[..., str]
) -> None:
    client.CoreV1Api(kube).create_namespace({"metadata": {"name": "preview-a"}})
    apply_deployment(kube, deployment(namespace="preview-a", labels=MANAGED))
    apply_deployment(kube, deployment("other", "default"))
    lines = kubectl("get", "deploy", "-A", "-l", "app.kubernetes.io/managed-by=shipyard")
    rows = [line.split() for line in lines.splitlines()]
    assert rows[0] == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert [r[:2] for r in rows[1:]] == [["preview-a", "web"]]
    namespaces = [line.split()[:2] for line in kubectl("get", "ns").splitlines()]
    assert ["preview-a", "Active"] in namespaces
    assert namespaces[0] == ["NAME", "STATUS"]


def test_kubectl_server_side_apply(kube: client.ApiClient, kubectl: Callable[..., str]) -> None:
    manifest = json.dumps(deployment("from-kubectl", labels=MANAGED))
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    applied = client.AppsV1Api(kube).read_namespaced_deployment("from-kubectl", "default")
    assert [m.manager for m in applied.metadata.managed_fields if m.operation == "Apply"] == [
        "kubectl"
    ]
    kubectl("rollout", "status", "deploy/from-kubectl", "--timeout=10s")
    settled = client.AppsV1Api(kube).read_namespaced_deployment("from-kubectl", "default")
    kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    again = client.AppsV1Api(kube).read_namespaced_deployment("from-kubectl", "default")
    assert again.metadata.resource_version == settled.metadata.resource_version

    changed = deployment("from-kubectl", image="nginx:1.26", labels=MANAGED)
    changed["metadata"]["annotations"] = {"kubernetes.io/change-cause": "commit 2: bump"}
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(changed))
    kubectl("rollout", "status", "deploy/from-kubectl", "--timeout=10s")
    history = kubectl("rollout", "history", "deploy/from-kubectl").split()
    assert history[-3:] == ["commit", "2:", "bump"]
