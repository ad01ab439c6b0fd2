"""Conformance: the fake API server refuses what kube-apiserver refuses of a pod template.

Each case is written from the Kubernetes API reference and apimachinery's validation
(`ValidateResourceRequirements`, quantity decoding, …) and sent as Shipyard sends
objects: a server-side apply through the official client. BEHAVIOURS.md lists them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as typed_client
from kubernetes.client.exceptions import ApiException

from tests.fake_apiserver import FakeApiServer, fixtures

Json = dict[str, Any]
APPLY = "application/apply-patch+yaml"
client: Any = typed_client
fake_apiserver = fixtures.fake_apiserver


@pytest.fixture
def apps(fake_apiserver: FakeApiServer) -> Iterator[Any]:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    yield client.AppsV1Api(api)
    api.close()


def deployment(container: Json, **pod_spec: Any) -> Json:
    """A Deployment whose one container and pod spec carry the given fields."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "app", "image": "nginx:1.25", **container}],
                    **pod_spec,
                },
            },
        },
    }


def apply(apps: Any, body: Json, **options: Any) -> Json:
    result: Json = apps.patch_namespaced_deployment(
        "web",
        "default",
        body,
        field_manager="shipyard",
        force=True,
        _content_type=APPLY,
        **options,
    ).to_dict()
    return result


def refused(apps: Any, body: Json, **options: Any) -> tuple[int, Json]:
    with pytest.raises(ApiException) as caught:
        apply(apps, body, **options)
    status: Json = json.loads(caught.value.body or "{}")
    return int(caught.value.status), status


def test_requests_above_limits_are_422_naming_the_resource(apps: Any) -> None:
    status, body = refused(
        apps,
        deployment({"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}),
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'Deployment.apps "web" is invalid: spec.template.spec.containers[0].resources.'
        'requests[memory]: Invalid value: "1Gi": must be less than or equal to memory limit '
        "of 512Mi"
    )
    (cause,) = body["details"]["causes"]
    assert cause["field"] == "spec.template.spec.containers[0].resources.requests[memory]"


def test_requests_equal_to_limits_in_other_units_are_accepted(apps: Any) -> None:
    resources = {"requests": {"memory": "1024Mi", "cpu": "500m"}, "limits": {"memory": "1Gi"}}
    applied = apply(apps, deployment({"resources": resources}))
    assert applied["metadata"]["generation"] == 1


@pytest.mark.parametrize("value", ["1 Gi", "lots", "1GB"])
def test_malformed_quantities_are_400_as_a_decoding_error(apps: Any, value: str) -> None:
    status, body = refused(apps, deployment({"resources": {"limits": {"memory": value}}}))
    assert (status, body["reason"]) == (400, "BadRequest")
    assert "quantities must match the regular expression" in body["message"]


def test_negative_quantities_are_422(apps: Any) -> None:
    status, body = refused(apps, deployment({"resources": {"requests": {"cpu": "-1"}}}))
    assert status == 422
    assert "must be greater than or equal to 0" in body["message"]
