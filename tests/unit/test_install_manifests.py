"""The install manifests: they parse, build with kustomize, pass the Kubernetes schemas,
and grant the controller exactly the API calls the Kubernetes target declares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from controller.targets.kubernetes import permissions, rendering

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
KUBERNETES_VERSIONS = ("1.30", "1.32", "1.34")
# Kinds whose schemas come from CRDs, not Kubernetes itself.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
CONTROLLER_NAMESPACE = "shipyard-system"
SERVICE_ACCOUNT = "shipyard-controller"
GATEWAY = "shipyard-gateway"


KUBERNETES_FILES = sorted(
    path for path in MANIFESTS.glob("**/*.yaml") if path.name != "kustomization.yaml"
)


def objects_in(path: Path) -> list[dict[str, Any]]:
    return [item for item in yaml.safe_load_all(path.read_text(encoding="utf-8")) if item]


def base_objects() -> list[dict[str, Any]]:
    """The base as `kustomization.yaml` lists it, read without kustomize."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text("utf-8"))
    return [item for name in kustomization["resources"] for item in objects_in(MANIFESTS / name)]


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        item
        for item in base_objects()
        if item["kind"] == kind and (name is None or item["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def kubectl_kustomize() -> str:
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not on PATH in CI")
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# Files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("**/*.yaml")), ids=lambda path: path.name)
def test_every_yaml_file_parses_into_objects(path: Path) -> None:
    items = objects_in(path)
    assert items
    for item in items:
        assert {"apiVersion", "kind"} <= set(item), path


def test_the_grafana_dashboard_parses() -> None:
    dashboard = json.loads((MANIFESTS / "grafana-dashboard.json").read_text("utf-8"))
    assert dashboard["panels"]


def test_the_base_lists_every_resource_file_and_leaves_the_servicemonitor_optional() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text("utf-8"))
    resources = kustomization["resources"]
    assert all((MANIFESTS / name).is_file() for name in resources)
    assert "servicemonitor.yaml" not in resources
    listed = set(resources) | {"kustomization.yaml", "servicemonitor.yaml"}
    assert {path.name for path in MANIFESTS.glob("*.yaml")} == listed


@pytest.mark.parametrize("path", KUBERNETES_FILES, ids=lambda path: path.name)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_the_kubernetes_schema(path: Path, version: str) -> None:
    for item in objects_in(path):
        if (item["apiVersion"], item["kind"]) in CUSTOM_KINDS:
            continue
        assert kubernetes_validate.validate(item, version, strict=True) == version


# kustomize --------------------------------------------------------------------------------


def test_kubectl_kustomize_builds_the_base() -> None:
    built = [item for item in yaml.safe_load_all(kubectl_kustomize()) if item]
    kinds = sorted((item["kind"], item["metadata"]["name"]) for item in built)
    assert kinds == sorted((item["kind"], item["metadata"]["name"]) for item in base_objects())
    assert {kind for kind, _ in kinds} == {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    }
    for item in built:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(item, version, strict=True)


# RBAC -------------------------------------------------------------------------------------


def granted(role: dict[str, Any]) -> set[permissions.Permission]:
    return {
        permissions.Permission(group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_cluster_role_grants_exactly_the_declared_cluster_calls() -> None:
    role = find("ClusterRole", "shipyard-controller")
    assert granted(role) == permissions.CLUSTER
    missing = permissions.CLUSTER - granted(role)
    beyond = granted(role) - permissions.CLUSTER
    assert not missing, f"rbac.yaml lacks {sorted(missing)}"
    assert not beyond, f"rbac.yaml grants more than the target uses: {sorted(beyond)}"


def test_the_leader_election_role_grants_exactly_the_lease_calls() -> None:
    role = find("Role", "shipyard-leader-election")
    assert role["metadata"]["namespace"] == CONTROLLER_NAMESPACE
    assert granted(role) == permissions.LEADER_ELECTION


def test_secrets_are_read_only_in_the_production_namespace() -> None:
    role = find("Role", "shipyard-source-secrets")
    assert role["metadata"]["namespace"] == "shipyard-production"
    assert granted(role) == permissions.SOURCE_SECRETS
    cluster = {
        p for p in granted(find("ClusterRole", "shipyard-controller")) if p.resource == "secrets"
    }
    # Cluster-wide only the copies into preview namespaces: written, never read back.
    assert (
        cluster
        == permissions.SECRET_COPIES
        == {
            permissions.Permission("", "secrets", "create"),
            permissions.Permission("", "secrets", "patch"),
        }
    )


def roles() -> list[dict[str, Any]]:
    return [item for item in base_objects() if item["kind"] in {"ClusterRole", "Role"}]


def test_together_the_roles_cover_every_required_call() -> None:
    assert set().union(*(granted(role) for role in roles())) == permissions.REQUIRED
    for required in sorted(permissions.REQUIRED):
        assert permissions.allowed(*required)
    for verb in ("list", "watch", "delete", "update"):
        assert not permissions.allowed("", "secrets", verb)


def test_no_wildcards_no_secret_listing_no_escalation() -> None:
    for role in roles():
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
            for values in (rule["apiGroups"], rule["resources"], rule["verbs"]):
                assert "*" not in values, rule
            if "secrets" in rule["resources"]:
                assert not {"list", "watch"} & set(rule["verbs"]), rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            # Writes are server-side applies (patch); only the Lease is updated in place.
            if "update" in rule["verbs"]:
                assert rule["resources"] == ["leases"], rule


def test_bindings_give_the_roles_to_the_controllers_service_account() -> None:
    account = find("ServiceAccount", SERVICE_ACCOUNT)
    assert account["metadata"]["namespace"] == CONTROLLER_NAMESPACE
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": CONTROLLER_NAMESPACE}
    bindings = [
        item
        for item in base_objects()
        if item["kind"] in {"ClusterRoleBinding", "RoleBinding"}
        and item["metadata"]["name"] != GATEWAY
    ]
    assert len(bindings) == len([r for r in roles() if r["metadata"]["name"] != GATEWAY]) == 3
    for binding in bindings:
        role_kind = binding["kind"].removesuffix("Binding")
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role_kind
        role = find(role_kind, binding["roleRef"]["name"])
        assert role["metadata"].get("namespace") == binding["metadata"].get("namespace")
    pod = find("Deployment", "shipyard-controller")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT


def test_everything_rendering_produces_is_a_kind_the_controller_may_manage() -> None:
    workload = rendering.Workload(
        name="bot",
        environment="preview-x",
        version="0123456789",
        commit="0" * 40,
        image="example/bot:1",
        model_provider="fake",
        model_name="fake-small",
        prompt="p",
        host="bot--preview-x.example.com",
    )
    settings = rendering.EnvironmentSettings(
        name="preview-x", namespace="preview-x", is_preview=True
    )
    plurals = {
        "Namespace": "namespaces",
        "ResourceQuota": "resourcequotas",
        "LimitRange": "limitranges",
        "NetworkPolicy": "networkpolicies",
        "ConfigMap": "configmaps",
        "Deployment": "deployments",
        "Service": "services",
        "Ingress": "ingresses",
    }
    for item in rendering.render_environment([workload], settings):
        group = item["apiVersion"].rpartition("/")[0]
        assert (group, plurals[item["kind"]]) in permissions.MANAGED_KINDS, item["kind"]
        for verb in ("get", "create", "patch", "delete"):
            assert permissions.allowed(group, plurals[item["kind"]], verb)


# The controller's Deployment and Service ----------------------------------------------------


def test_the_controller_deployment_runs_the_kubernetes_target_hardened() -> None:
    deployment = find("Deployment", "shipyard-controller")
    assert deployment["metadata"]["namespace"] == CONTROLLER_NAMESPACE
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ghcr.io/shipyard-dev/shipyard:0.1.0"
    assert container["args"] == ["serve", "--target", "kubernetes", "--repo", "$(SHIPYARD_REPO)"]
    # $(SHIPYARD_REPO) expands only from a variable named in `env`.
    assert "SHIPYARD_REPO" in {item["name"] for item in container["env"]}
    sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
    assert sources == {"shipyard-config", "shipyard-secrets"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    config = find("ConfigMap", "shipyard-config")
    assert "SHIPYARD_REPO" in config["data"]


def test_service_and_servicemonitor_agree_with_the_deployment() -> None:
    service = find("Service", "shipyard-controller")
    pod_labels = find("Deployment", "shipyard-controller")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [port["name"] for port in service["spec"]["ports"]] == ["http"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    monitors = {m["metadata"]["name"]: m for m in objects_in(MANIFESTS / "servicemonitor.yaml")}
    assert set(monitors) == {"shipyard-controller", GATEWAY}
    monitor = monitors["shipyard-controller"]
    gateway = monitors[GATEWAY]
    gateway_labels = find("Service", GATEWAY)["metadata"]["labels"]
    assert gateway["spec"]["selector"]["matchLabels"].items() <= gateway_labels.items()
    assert (
        not gateway["spec"]["selector"]["matchLabels"].items()
        <= service["metadata"]["labels"].items()
    )
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [CONTROLLER_NAMESPACE]
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http"]


def test_install_objects_are_never_labelled_as_shipyard_managed() -> None:
    """The controller prunes what carries managed-by=shipyard; it must not prune itself."""
    for item in base_objects():
        labels = item["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/managed-by") != "shipyard", item["metadata"]["name"]


def test_production_namespace_matches_the_renderers_default() -> None:
    names = {item["metadata"]["name"] for item in base_objects() if item["kind"] == "Namespace"}
    assert names == {CONTROLLER_NAMESPACE, rendering.DEFAULT_PRODUCTION_NAMESPACE}


# The gateway -------------------------------------------------------------------------------


def test_the_gateway_may_only_watch_pods_and_deployments() -> None:
    role = find("ClusterRole", GATEWAY)
    assert granted(role) == permissions.GATEWAY
    assert permissions.GATEWAY <= permissions.REQUIRED  # calls the shared client declares
    binding = find("ClusterRoleBinding", GATEWAY)
    assert binding["roleRef"]["name"] == GATEWAY
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": GATEWAY, "namespace": CONTROLLER_NAMESPACE}
    ]


def test_the_gateway_runs_the_same_image_behind_its_service() -> None:
    deployment = find("Deployment", GATEWAY)
    controller = find("Deployment", "shipyard-controller")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (controller_container,) = controller["spec"]["template"]["spec"]["containers"]
    assert container["image"] == controller_container["image"]
    assert container["args"] == ["gateway"]
    assert pod["spec"]["serviceAccountName"] == GATEWAY
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {item["name"]: item for item in container["env"]}
    assert env["SHIPYARD_GATEWAY_HOST"]["value"] == "0.0.0.0"
    # Hosts are matched with the controller's template, read from the same ConfigMap.
    reference = env["SHIPYARD_URL_TEMPLATE"]["valueFrom"]["configMapKeyRef"]
    assert reference == {"name": "shipyard-config", "key": "SHIPYARD_URL_TEMPLATE"}
    service = find("Service", GATEWAY)
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
