"""Conformance: the fake API server refuses what kube-apiserver refuses of a pod template.

Each case is written from the Kubernetes API reference and apimachinery's validation
(`ValidateResourceRequirements`, quantity decoding, …) and sent as Shipyard sends
objects: a server-side apply through the official client. BEHAVIOURS.md lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
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


CONTAINER = "spec.template.spec.containers[0]"


@pytest.mark.parametrize(
    ("container", "pod_spec", "message"),
    [
        pytest.param(
            {"ports": [{"name": "a-very-long-name", "containerPort": 80}]},
            {},
            f'{CONTAINER}.ports[0].name: Invalid value: "a-very-long-name": must be no more '
            "than 15 characters",
            id="port-name-over-15",
        ),
        pytest.param(
            {"ports": [{"name": "web_port", "containerPort": 80}]},
            {},
            f'{CONTAINER}.ports[0].name: Invalid value: "web_port": must contain only '
            "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            id="port-name-underscore",
        ),
        pytest.param(
            {"env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
            {},
            f'{CONTAINER}.env[0].valueFrom: Invalid value: "": may not be specified when '
            "`value` is not empty",
            id="env-value-and-value-from",
        ),
        pytest.param(
            {"env": [{"name": "A=B", "value": "x"}]},
            {},
            f'{CONTAINER}.env[0].name: Invalid value: "A=B": a valid environment variable '
            "name must consist only of printable ASCII characters other than '='",
            id="env-name-with-equals",
        ),
        pytest.param(
            {"readinessProbe": {"periodSeconds": 5}},
            {},
            f"{CONTAINER}.readinessProbe: Required value: must specify a handler type",
            id="probe-without-handler",
        ),
        pytest.param(
            {"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {},
            f'{CONTAINER}.volumeMounts[0].name: Not found: "data"',
            id="mount-of-undeclared-volume",
        ),
        pytest.param(
            {"image": "nginx:1.25 "},
            {},
            f'{CONTAINER}.image: Invalid value: "nginx:1.25 ": must not have leading or '
            "trailing whitespace",
            id="image-with-whitespace",
        ),
    ],
)
def test_pod_template_rules_are_422_with_apimachinerys_words(
    apps: Any, container: Json, pod_spec: Json, message: str
) -> None:
    status, body = refused(apps, deployment(container, **pod_spec))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == f'Deployment.apps "web" is invalid: {message}'


def test_declared_volumes_and_one_probe_handler_are_accepted(apps: Any) -> None:
    container = {
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "weird.name-ok", "value": "1"}],
    }
    applied = apply(apps, deployment(container, volumes=[{"name": "data", "emptyDir": {}}]))
    assert applied["metadata"]["generation"] == 1


def test_max_surge_and_max_unavailable_both_zero_is_422(apps: Any) -> None:
    body = deployment({})
    body["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0},
    }
    status, refusal = refused(apps, body)
    assert status == 422
    assert refusal["message"] == (
        'Deployment.apps "web" is invalid: spec.strategy.rollingUpdate.maxUnavailable: '
        "Invalid value: 0: may not be 0 when `maxSurge` is 0"
    )


@pytest.mark.parametrize("host", ["Agent.Example.com", "agent.example.com:443"])
def test_ingress_hosts_must_be_lowercase_dns_names_without_ports(
    fake_apiserver: FakeApiServer, host: str
) -> None:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"rules": [{"host": host}]},
    }
    with pytest.raises(ApiException) as caught:
        client.NetworkingV1Api(api).create_namespaced_ingress("default", ingress)
    assert caught.value.status == 422
    message = json.loads(caught.value.body or "{}")["message"]
    assert message.startswith(
        f'Ingress.networking.k8s.io "web" is invalid: spec.rules[0].host: Invalid value: '
        f'"{host}": a lowercase RFC 1123 subdomain'
    )
    api.close()


def test_error_bodies_end_with_a_newline_like_a_real_servers(apps: Any) -> None:
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("absent", "default")
    assert caught.value.status == 404
    assert (caught.value.body or "").endswith("}\n")


def with_unknown_fields() -> Json:
    body = deployment({"imagePullPolice": "Always"})
    body["spec"]["replicaz"] = 3
    return body


@pytest.mark.parametrize("field_validation", [None, "Ignore", "Warn", "Strict"])
def test_apply_refuses_unknown_fields_whatever_field_validation_says(
    apps: Any, field_validation: str | None
) -> None:
    # An apply body is converted to a typed object first; that conversion has no way to
    # drop a field, so fieldValidation does not soften it (kubernetes PR 105916).
    options = {"field_validation": field_validation} if field_validation else {}
    status, body = refused(apps, with_unknown_fields(), **options)
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"].endswith(".spec.replicaz: field not declared in schema")


def created_with_unknown_fields(api: Any, field_validation: str = "") -> tuple[Any, Json]:
    """A ConfigMap with an undeclared `dataa` created through the official client's
    ApiClient (its typed methods refuse undeclared fields themselves, as kubectl does
    not); (the response, its decoded body)."""
    body = {"metadata": {"name": "c"}, "data": {"a": "b"}, "dataa": {"c": "d"}}
    request = api.param_serialize(
        "POST",
        "/api/v1/namespaces/{namespace}/configmaps",
        path_params={"namespace": "default"},
        query_params=[("fieldValidation", field_validation)] if field_validation else [],
        header_params={"Content-Type": "application/json"},
        body=body,
    )
    response = api.call_api(*request[:4])
    response.read()
    created: Json = json.loads(response.data)
    return response, created


def test_unknown_fields_are_pruned_with_a_warning_header_by_default(
    fake_apiserver: FakeApiServer,
) -> None:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    try:
        response, created = created_with_unknown_fields(api)
    finally:
        api.close()
    assert response.status == 201
    assert created["data"] == {"a": "b"}
    assert "dataa" not in created
    assert response.getheaders().getlist("Warning") == ['299 - "unknown field \\"dataa\\""']


def test_ignore_prunes_unknown_fields_without_a_warning(fake_apiserver: FakeApiServer) -> None:
    api = client.ApiClient(client.Configuration(host=fake_apiserver.url))
    try:
        response, created = created_with_unknown_fields(api, "Ignore")
    finally:
        api.close()
    assert "dataa" not in created
    assert response.getheaders().getlist("Warning") == []


def test_kubectl_prints_the_warnings_of_a_pruning_update(
    fake_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = fake_apiserver.kubeconfig(tmp_path / "kubeconfig")
    manifest = with_unknown_fields()
    done = subprocess.run(
        [
            *("kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c")),
            *("create", "--validate=warn", "-f", "-"),
        ],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert 'Warning: unknown field "spec.replicaz"' in done.stderr
    assert (
        'Warning: unknown field "spec.template.spec.containers[0].imagePullPolice"' in done.stderr
    )


def test_strict_field_validation_refuses_unknown_fields_on_apply(apps: Any) -> None:
    status, body = refused(apps, with_unknown_fields(), field_validation="Strict")
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers[name="app"].imagePullPolice: field not declared in '
        "schema\n.spec.replicaz: field not declared in schema"
    )


def test_strict_field_validation_refuses_unknown_fields_on_create(
    fake_apiserver: FakeApiServer,
) -> None:
    # The typed client refuses unknown fields itself; kubectl and raw clients do not.
    config_map = {"metadata": {"name": "c"}, "data": {"a": "b"}, "dataa": {"c": "d"}}
    url = f"{fake_apiserver.url}/api/v1/namespaces/default/configmaps"

    def post(query: str) -> tuple[int, Json]:
        request = urllib.request.Request(
            url + query,
            data=json.dumps(config_map).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, body = post("?fieldValidation=Strict")
    assert (status, body["message"]) == (400, 'strict decoding error: unknown field "dataa"')
    status, created = post("")
    assert status == 201
    assert created["data"] == {"a": "b"}
    assert "dataa" not in created
