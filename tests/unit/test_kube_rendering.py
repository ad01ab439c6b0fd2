"""Rendering agents into Kubernetes objects: labels, hashes, previews, schemas, the CLI.

Every rendered object is checked against the real Kubernetes OpenAPI schemas
(`kubernetes-validate`, strict: unknown fields fail) for each supported version.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.cli.main import cli
from controller.errors import ShipyardError
from controller.reconciler import kube_workloads
from controller.source.mirror import Commit
from controller.specs import loading
from controller.specs.model import Agent
from controller.specs.tree import FilesystemTree
from controller.targets.kubernetes import rendering
from preview import naming
from tests.gitrepos import git

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"
# Oldest and newest minor versions Shipyard supports, and one between.
KUBERNETES_VERSIONS = ("1.30", "1.32", "1.34")
SHA = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"
PREVIEW = naming.environment_name("feature/Friendlier support!", "main")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def make_workload(**changes: Any) -> rendering.Workload:
    workload = rendering.Workload(
        name="support-bot",
        environment=PREVIEW,
        version="6a4d7ad870",
        commit=SHA,
        branch="feature/Friendlier support!",
        author="Ada Lovelace",
        message="Friendlier greeting\n\nLonger explanation.",
        source="https://github.com/acme/agents.git",
        image="ghcr.io/acme/support-bot:1.4.2",
        model_provider="openai",
        model_name="gpt-4o-mini",
        model_parameters={"temperature": 0.2, "maxTokens": 512},
        prompt="You are a helpful support agent.\nBe brief.\n",
        port=8000,
        replicas=1,
        env=(("LOG_LEVEL", "info"), ("REGION", "eu")),
        secrets=(rendering.SecretEnv("OPENAI_API_KEY", "openai", "api-key"),),
        requests={"cpu": "100m", "memory": "128Mi"},
        limits={"memory": "512Mi"},
        health=rendering.HealthProbe(
            path="/ready",
            period_seconds=5,
            timeout_seconds=2,
            failure_threshold=4,
            initial_delay_seconds=3,
        ),
        labels={"team": "support", "tier": "frontline"},
        progress_deadline_seconds=90,
        host=f"support-bot--{PREVIEW}.preview.example.com",
    )
    return dataclasses.replace(workload, **changes)


def preview_settings(**changes: Any) -> rendering.EnvironmentSettings:
    base = rendering.EnvironmentSettings(
        name=PREVIEW,
        namespace=PREVIEW,
        is_preview=True,
        branch="feature/Friendlier support!",
        ingress_class="nginx",
        tls_secret="preview-wildcard-tls",
    )
    return dataclasses.replace(base, **changes)


def production_settings() -> rendering.EnvironmentSettings:
    return rendering.EnvironmentSettings(
        name=naming.PRODUCTION, namespace="shipyard-production", is_preview=False
    )


def production_workload(**changes: Any) -> rendering.Workload:
    return make_workload(
        environment=naming.PRODUCTION,
        host="support-bot--production.preview.example.com",
        replicas=3,
        **changes,
    )


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [item for item in objects if item["kind"] == kind]
    return found


def schema_errors(item: dict[str, Any]) -> list[str]:
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{item['kind']} {item['metadata']['name']} @ {version}: {error}")
    return errors


# Labels and annotations -----------------------------------------------------------------


def test_deployment_and_pod_template_carry_every_label_and_annotation() -> None:
    deployment = rendering.deployment(make_workload(), preview_settings())
    template = deployment["spec"]["template"]["metadata"]
    expected_labels = {
        "team": "support",
        "tier": "frontline",
        "app.kubernetes.io/name": "support-bot",
        "app.kubernetes.io/managed-by": "shipyard",
        "shipyard.dev/agent": "support-bot",
        "shipyard.dev/environment": PREVIEW,
        "shipyard.dev/version": "6a4d7ad870",
    }
    expected_annotations = {
        "shipyard.dev/commit": SHA,
        "shipyard.dev/branch": "feature/Friendlier support!",
        "shipyard.dev/author": "Ada Lovelace",
        "shipyard.dev/source": "https://github.com/acme/agents.git",
        "kubernetes.io/change-cause": f"{SHA[:12]}: Friendlier greeting",
    }
    assert deployment["metadata"]["labels"] == expected_labels
    assert template["labels"] == expected_labels
    assert deployment["metadata"]["annotations"] == expected_annotations
    assert {
        key: value for key, value in template["annotations"].items() if key in expected_annotations
    } == expected_annotations
    assert deployment["metadata"]["namespace"] == PREVIEW


def test_shipyard_labels_win_over_the_agents_own() -> None:
    workload = make_workload(labels={"app.kubernetes.io/name": "impostor", "team": "x"})
    assert rendering.labels(workload)["app.kubernetes.io/name"] == "support-bot"
    assert rendering.labels(workload)["team"] == "x"


def test_every_object_of_an_agent_is_labelled() -> None:
    for item in rendering.workload_objects(make_workload(), preview_settings()):
        labels = item["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "shipyard", item["kind"]
        assert labels["shipyard.dev/version"] == "6a4d7ad870", item["kind"]
    for item in rendering.namespace_objects(preview_settings()):
        assert item["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "shipyard"
        assert item["metadata"]["labels"]["shipyard.dev/environment"] == PREVIEW


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Fix greeting", f"{SHA[:12]}: Fix greeting"),
        ("  Fix greeting  \n\nbody\nmore", f"{SHA[:12]}: Fix greeting"),
        ("", SHA[:12]),
        ("x" * 400, f"{SHA[:12]}: " + "x" * (256 - 15) + "…"),
    ],
    ids=["one-line", "first-line-only", "no-message", "cut-to-256"],
)
def test_change_cause_is_short_sha_and_summary(message: str, expected: str) -> None:
    cause = rendering.change_cause(SHA, message)
    assert cause == expected
    assert len(cause) <= 256


def test_empty_origin_fields_are_left_out_but_change_cause_stays() -> None:
    annotations = rendering.revision_annotations(make_workload(author="", source="", branch=""))
    assert set(annotations) == {"shipyard.dev/commit", "kubernetes.io/change-cause"}


# Selectors -------------------------------------------------------------------------------


def test_selectors_hold_name_and_environment_never_the_version() -> None:
    objects = rendering.workload_objects(make_workload(), preview_settings())
    deployment, service = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    expected = {"app.kubernetes.io/name": "support-bot", "shipyard.dev/environment": PREVIEW}
    assert deployment["spec"]["selector"] == {"matchLabels": expected}
    assert service["spec"]["selector"] == expected
    # The pod template must match its own selector.
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert expected.items() <= template_labels.items()


def test_a_new_version_keeps_the_immutable_selector() -> None:
    old = rendering.deployment(make_workload(version="aaaaaaaaaa"), preview_settings())
    new = rendering.deployment(make_workload(version="bbbbbbbbbb"), preview_settings())
    assert old["spec"]["selector"] == new["spec"]["selector"]
    assert old["spec"]["template"] != new["spec"]["template"]


# Configuration hash ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "You are terse."},
        {"model_name": "gpt-4o"},
        {"model_provider": "anthropic"},
        {"model_parameters": {"temperature": 0.3, "maxTokens": 512}},
    ],
    ids=["prompt", "model-name", "provider", "parameters"],
)
def test_config_hash_changes_with_prompt_and_model(change: dict[str, Any]) -> None:
    before, after = make_workload(), make_workload(**change)
    assert rendering.config_hash(before) != rendering.config_hash(after)
    old = rendering.deployment(before, preview_settings())["spec"]["template"]
    new = rendering.deployment(after, preview_settings())["spec"]["template"]
    assert old["metadata"]["annotations"] != new["metadata"]["annotations"]
    assert old["spec"]["volumes"] != new["spec"]["volumes"]


@pytest.mark.parametrize(
    "change",
    [
        {"image": "ghcr.io/acme/support-bot:2.0.0"},
        {"version": "ffffffffff"},
        {"commit": "0" * 40},
        {"replicas": 5},
        {"env": (("LOG_LEVEL", "debug"),)},
        {"labels": {"team": "other"}},
        {"host": None},
        {"environment": "production"},
    ],
    ids=["image", "version", "commit", "replicas", "env", "labels", "host", "environment"],
)
def test_config_hash_ignores_unrelated_fields(change: dict[str, Any]) -> None:
    assert rendering.config_hash(make_workload()) == rendering.config_hash(make_workload(**change))


def test_config_map_is_named_by_hash_mounted_and_immutable() -> None:
    workload = make_workload()
    objects = rendering.workload_objects(workload, preview_settings())
    config_map, deployment = by_kind(objects, "ConfigMap"), by_kind(objects, "Deployment")
    digest = rendering.config_hash(workload)
    assert re.fullmatch(r"[0-9a-f]{10}", digest)
    assert config_map["metadata"]["name"] == f"support-bot-config-{digest}"
    assert config_map["immutable"] is True
    assert config_map["data"]["prompt.txt"] == workload.prompt
    assert json.loads(config_map["data"]["model.json"]) == {
        "provider": "openai",
        "name": "gpt-4o-mini",
        "parameters": {"temperature": 0.2, "maxTokens": 512},
    }
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["shipyard.dev/config-hash"] == digest
    assert {"name": "config", "configMap": {"name": f"support-bot-config-{digest}"}} in pod["spec"][
        "volumes"
    ]
    (container,) = pod["spec"]["containers"]
    assert {"name": "config", "mountPath": "/etc/shipyard", "readOnly": True} in container[
        "volumeMounts"
    ]
    # The ConfigMap comes before the Deployment that mounts it.
    assert objects.index(config_map) < objects.index(deployment)


# Previews --------------------------------------------------------------------------------


def test_previews_get_namespace_quota_limits_and_network_policy_first() -> None:
    objects = rendering.render_environment([make_workload()], preview_settings())
    kinds = [item["kind"] for item in objects]
    assert kinds[:4] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"]
    assert kinds[4:] == ["ConfigMap", "Deployment", "Service", "Ingress"]
    namespace = objects[0]
    assert namespace["metadata"]["name"] == PREVIEW
    assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "shipyard"
    assert namespace["metadata"]["annotations"] == {
        "shipyard.dev/branch": "feature/Friendlier support!"
    }
    assert all(item["metadata"].get("namespace", PREVIEW) == PREVIEW for item in objects)
    quota = by_kind(objects, "ResourceQuota")["spec"]["hard"]
    assert quota["pods"] == "20"
    assert {"requests.cpu", "requests.memory", "limits.cpu", "limits.memory"} <= set(quota)
    (limits,) = by_kind(objects, "LimitRange")["spec"]["limits"]
    assert limits["type"] == "Container"
    assert set(limits["defaultRequest"]) == set(limits["default"]) == {"cpu", "memory"}


def test_a_secret_copy_keeps_type_and_data_and_says_where_it_came_from() -> None:
    settings = preview_settings()
    source = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "sentry",
            "namespace": "shipyard-production",
            "annotations": {"shipyard.dev/scope": "all", "owner": "ops"},
            "uid": "1234",
            "resourceVersion": "7",
        },
        "type": "Opaque",
        "data": {"dsn": "ZHNu"},
    }
    copy = rendering.secret_copy(source, settings)
    assert copy["metadata"] == {
        "name": "sentry",
        "namespace": settings.namespace,
        "labels": rendering.environment_labels(settings),
        "annotations": {"shipyard.dev/copied-from": "shipyard-production/sentry"},
    }
    assert (copy["type"], copy["data"]) == ("Opaque", {"dsn": "ZHNu"})
    assert schema_errors(copy) == []


def test_production_gets_no_namespace_objects() -> None:
    objects = rendering.render_environment([production_workload()], production_settings())
    assert [item["kind"] for item in objects] == ["ConfigMap", "Deployment", "Service", "Ingress"]
    assert {item["metadata"]["namespace"] for item in objects} == {"shipyard-production"}
    assert by_kind(objects, "Deployment")["spec"]["replicas"] == 3


def test_network_policy_admits_only_the_ingress_controller_and_the_namespace() -> None:
    policy = rendering.network_policy(preview_settings())
    spec = policy["spec"]
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                    }
                },
                {"podSelector": {}},
            ]
        }
    ]
    assert spec["egress"] == [{}]


def test_ingress_controller_namespaces_are_configurable() -> None:
    settings = preview_settings(ingress_namespaces=("traefik", "shipyard-system"))
    peers = rendering.network_policy(settings)["spec"]["ingress"][0]["from"]
    selected = [peer["namespaceSelector"]["matchLabels"] for peer in peers[:-1]]
    assert selected == [
        {"kubernetes.io/metadata.name": "traefik"},
        {"kubernetes.io/metadata.name": "shipyard-system"},
    ]


# Container -------------------------------------------------------------------------------


def test_env_is_manifest_then_secret_refs_then_shipyard_variables() -> None:
    env = rendering.container_env(make_workload())
    assert [item["name"] for item in env] == [
        "LOG_LEVEL",
        "REGION",
        "OPENAI_API_KEY",
        "PORT",
        "SHIPYARD_AGENT",
        "SHIPYARD_ENVIRONMENT",
        "SHIPYARD_VERSION",
        "SHIPYARD_COMMIT",
        "SHIPYARD_MODEL",
        "SHIPYARD_PROMPT_FILE",
        "SHIPYARD_MODEL_CONFIG",
    ]
    values = {item["name"]: item.get("value") for item in env}
    assert env[2] == {
        "name": "OPENAI_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}},
    }
    assert values["PORT"] == "8000"
    assert values["SHIPYARD_MODEL"] == "openai/gpt-4o-mini"
    assert values["SHIPYARD_ENVIRONMENT"] == PREVIEW
    assert values["SHIPYARD_COMMIT"] == SHA
    assert values["SHIPYARD_PROMPT_FILE"] == "/etc/shipyard/prompt.txt"
    assert values["SHIPYARD_MODEL_CONFIG"] == "/etc/shipyard/model.json"


def test_no_secret_value_is_ever_rendered() -> None:
    text = json.dumps(rendering.render_environment([make_workload()], preview_settings()))
    assert '"kind": "Secret"' not in text
    assert "secretKeyRef" in text


def test_probes_come_from_the_health_check() -> None:
    deployment = rendering.deployment(make_workload(), preview_settings())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    expected = {
        "httpGet": {"path": "/ready", "port": "http"},
        "initialDelaySeconds": 3,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 4,
    }
    assert container["readinessProbe"] == expected
    assert container["livenessProbe"] == expected
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_rollout_settings_resources_and_hardening() -> None:
    deployment = rendering.deployment(make_workload(), preview_settings())
    spec = deployment["spec"]
    assert spec["progressDeadlineSeconds"] == 90
    assert spec["revisionHistoryLimit"] == 10
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_service_and_ingress_route_the_host_to_the_agent() -> None:
    objects = rendering.workload_objects(make_workload(), preview_settings())
    service, ingress = by_kind(objects, "Service"), by_kind(objects, "Ingress")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    host = f"support-bot--{PREVIEW}.preview.example.com"
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"hosts": [host], "secretName": "preview-wildcard-tls"}],
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": "support-bot", "port": {"name": "http"}}
                            },
                        }
                    ]
                },
            }
        ],
    }


def test_ingress_class_and_tls_are_optional_and_no_host_means_no_ingress() -> None:
    plain = preview_settings(ingress_class=None, tls_secret=None)
    ingress = rendering.ingress(make_workload(), plain)
    assert set(ingress["spec"]) == {"rules"}
    kinds = [o["kind"] for o in rendering.workload_objects(make_workload(host=None), plain)]
    assert kinds == ["ConfigMap", "Deployment", "Service"]


# Names, determinism, errors ---------------------------------------------------------------


def assert_names_valid(objects: list[dict[str, Any]]) -> None:
    for item in objects:
        metadata = item["metadata"]
        assert len(metadata["name"]) <= 253, metadata["name"]
        assert DNS_SUBDOMAIN.fullmatch(metadata["name"]), metadata["name"]
        if item["kind"] in ("Namespace", "Service"):
            assert len(metadata["name"]) <= 63
        for key, value in metadata.get("labels", {}).items():
            assert len(value) <= 63, (key, value)
            assert LABEL_VALUE.fullmatch(value), (key, value)


def test_names_are_valid_for_the_longest_agent_and_branch() -> None:
    environment = naming.environment_name("feature/" + "Ünïcode branch " * 20, "main")
    workload = make_workload(
        name="a" * 24,
        environment=environment,
        host=naming.host_label("a" * 24, environment) + ".preview.example.com",
    )
    settings = preview_settings(name=environment, namespace=environment)
    objects = rendering.render_environment([workload], settings)
    assert_names_valid(objects)
    assert by_kind(objects, "ConfigMap")["metadata"]["name"] == (
        f"{'a' * 24}-config-{rendering.config_hash(workload)}"
    )


@settings(max_examples=60, deadline=None)
@given(branch=st.text(min_size=1, max_size=120))
def test_any_branch_renders_valid_names(branch: str) -> None:
    environment = naming.environment_name(branch, "main")
    workload = make_workload(
        environment=environment,
        branch=branch,
        host=naming.host_label("support-bot", environment) + ".example.com",
    )
    settings = preview_settings(name=environment, namespace=environment, branch=branch)
    assert_names_valid(rendering.render_environment([workload], settings))


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    workloads = [
        make_workload(name=name, host=None, labels={"b": "2", "a": "1"})
        for name in ("triage", "summarizer", "support-bot")
    ]
    first = rendering.render_environment(workloads, preview_settings())
    again = rendering.render_environment(list(reversed(workloads)), preview_settings())
    assert json.dumps(first) == json.dumps(again)
    names = [item["metadata"]["name"] for item in first if item["kind"] == "Deployment"]
    assert names == ["summarizer", "support-bot", "triage"]


@pytest.mark.parametrize(
    ("workload", "settings", "message"),
    [
        (make_workload(name="Support_Bot"), preview_settings(), "not a DNS-1035 label"),
        (make_workload(name="1bot"), preview_settings(), "not a DNS-1035 label"),
        (make_workload(image=""), preview_settings(), "has no image"),
        (make_workload(host="bad_host.example.com"), preview_settings(), "is not a DNS name"),
        (make_workload(labels={"team": "a b"}), preview_settings(), "not a valid label value"),
        (make_workload(environment="production"), preview_settings(), "belongs to environment"),
        (make_workload(), preview_settings(namespace="Preview_X"), "is not a DNS-1123 label"),
        (make_workload(), preview_settings(tls_secret="Bad"), "TLS secret"),
    ],
    ids=["uppercase", "leading-digit", "no-image", "host", "label", "wrong-env", "ns", "tls"],
)
def test_invalid_input_is_a_render_error(
    workload: rendering.Workload, settings: rendering.EnvironmentSettings, message: str
) -> None:
    with pytest.raises(rendering.RenderError, match=message):
        rendering.render_environment([workload], settings)


def test_an_agent_rendered_twice_is_an_error() -> None:
    with pytest.raises(rendering.RenderError, match="rendered twice"):
        rendering.render_environment([make_workload(), make_workload()], preview_settings())


# Real Kubernetes schemas -----------------------------------------------------------------


def full_renders() -> list[dict[str, Any]]:
    minimal = make_workload(
        name="minimal",
        env=(),
        secrets=(),
        requests={},
        limits={},
        labels={},
        model_parameters={},
        host=None,
    )
    preview = rendering.render_environment([make_workload(), minimal], preview_settings())
    production = rendering.render_environment(
        [production_workload(), dataclasses.replace(minimal, environment="production")],
        production_settings(),
    )
    return preview + production


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_passes_the_kubernetes_schema(version: str) -> None:
    objects = full_renders()
    assert {item["kind"] for item in objects} == {
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "ConfigMap",
        "Deployment",
        "Service",
        "Ingress",
    }
    for item in objects:
        assert kubernetes_validate.validate(item, version, strict=True) == version


def test_strict_schema_validation_catches_an_unknown_field() -> None:
    deployment = rendering.deployment(make_workload(), preview_settings())
    deployment["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# From agents: kube_workloads -------------------------------------------------------------


def example_agents() -> dict[str, Agent]:
    result = loading.collect(FilesystemTree(EXAMPLE_REPO))
    assert result.ok, result.problems
    return {agent.name: agent for agent in result.agents}


ORIGIN = kube_workloads.Origin(commit=SHA, branch="main", author="Ada", message="Ship it")


def test_workload_takes_replicas_host_and_parameters_from_the_agent() -> None:
    triage = example_agents()["triage"]
    agent = dataclasses.replace(triage, spec=dataclasses.replace(triage.spec, replicas=4))
    options = kube_workloads.ClusterOptions()
    production = kube_workloads.workload(agent, naming.PRODUCTION, ORIGIN, options)
    preview = kube_workloads.workload(agent, PREVIEW, ORIGIN, options)
    assert (production.replicas, preview.replicas) == (4, 1)
    assert production.host == "triage--production.preview.example.com"
    assert preview.host == f"triage--{PREVIEW}.preview.example.com"
    assert production.model_parameters == {"temperature": 0.1, "maxTokens": 512}
    assert production.progress_deadline_seconds == 60
    assert production.prompt == agent.spec.prompt.text
    assert production.version == agent.version
    no_hosts = kube_workloads.ClusterOptions(url_template=None)
    assert kube_workloads.workload(agent, PREVIEW, ORIGIN, no_hosts).host is None


def test_environment_settings_name_namespaces() -> None:
    options = kube_workloads.ClusterOptions(production_namespace="agents", namespace_prefix="sy-")
    production = kube_workloads.environment_settings(naming.PRODUCTION, "main", options)
    preview = kube_workloads.environment_settings(PREVIEW, "feature/x", options)
    assert (production.namespace, production.is_preview) == ("agents", False)
    assert (preview.namespace, preview.is_preview) == (f"sy-{PREVIEW}", True)


def test_previews_skip_agents_with_previews_disabled() -> None:
    agents = example_agents()
    disabled = dataclasses.replace(
        agents["summarizer"],
        spec=dataclasses.replace(
            agents["summarizer"].spec,
            preview=dataclasses.replace(agents["summarizer"].spec.preview, enabled=False),
        ),
    )
    everyone = [agents["triage"], disabled]
    options = kube_workloads.ClusterOptions()
    in_preview = kube_workloads.workloads(everyone, PREVIEW, ORIGIN, options)
    in_production = kube_workloads.workloads(everyone, naming.PRODUCTION, ORIGIN, options)
    assert [w.name for w in in_preview] == ["triage"]
    assert [w.name for w in in_production] == ["summarizer", "triage"]


def test_agents_without_an_image_are_not_renderable_and_all_are_named() -> None:
    agents = example_agents()
    imageless = [
        dataclasses.replace(agent, spec=dataclasses.replace(agent.spec, image=None))
        for agent in (agents["triage"], agents["summarizer"])
    ]
    with pytest.raises(kube_workloads.NotRenderable, match=r"summarizer.*triage"):
        kube_workloads.workloads(imageless, PREVIEW, ORIGIN, kube_workloads.ClusterOptions())


def test_a_port_in_the_url_template_does_not_reach_the_ingress_host() -> None:
    options = kube_workloads.ClusterOptions(url_template=naming.DEFAULT_LOCAL_URL_TEMPLATE)
    assert kube_workloads.host_for("triage", PREVIEW, options) == f"triage--{PREVIEW}.localhost"


def test_origin_redacts_credentials_in_the_source() -> None:
    commit = Commit(sha=SHA, author="Ada", email="a@x", message="m", time=datetime.now(UTC))
    origin = kube_workloads.Origin.of(commit, "main", "https://bot:s3cret@github.com/a/b.git")
    assert "s3cret" not in origin.source
    assert origin.source.endswith("@github.com/a/b.git")


# `shipyard render` -----------------------------------------------------------------------


@pytest.fixture
def example_git_repo(tmp_path: Path) -> Path:
    """examples/agents-repo as a git repository: `main`, and a branch changing one prompt."""
    root = tmp_path / "agents-repo"
    shutil.copytree(
        EXAMPLE_REPO, root, ignore=shutil.ignore_patterns(".git", ".mypy_cache", "__pycache__")
    )
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(root))
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "Initial agents")
    git(root, "checkout", "--quiet", "-b", "feature/friendlier-support")
    prompt = root / "agents" / "prompts" / "support-bot.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nBe friendly.\n", encoding="utf-8")
    git(root, "commit", "--quiet", "-am", "Friendlier support\n\nbody")
    git(root, "checkout", "--quiet", "main")
    return root


def render_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["render", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_render_prints_a_preview_as_a_yaml_stream(example_git_repo: Path) -> None:
    code, out, _ = render_cli(
        "--repo",
        str(example_git_repo),
        "--branch",
        "feature/friendlier-support",
        "--ingress-class",
        "nginx",
        "--tls-secret",
        "preview-tls",
    )
    assert code == 0
    assert out.startswith("---\n")
    objects = list(yaml.safe_load_all(out))
    environment = naming.environment_name("feature/friendlier-support", "main")
    assert [item["kind"] for item in objects[:4]] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
    ]
    assert objects[0]["metadata"]["name"] == environment
    deployments = [item for item in objects if item["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == ["summarizer", "support-bot", "triage"]
    support = deployments[1]
    assert support["metadata"]["annotations"]["shipyard.dev/branch"] == (
        "feature/friendlier-support"
    )
    assert support["metadata"]["annotations"]["kubernetes.io/change-cause"].endswith(
        ": Friendlier support"
    )
    config = next(
        item
        for item in objects
        if item["kind"] == "ConfigMap" and item["metadata"]["name"].startswith("support-bot-")
    )
    assert config["data"]["prompt.txt"].endswith("Be friendly.\n")
    # Prompts print as readable blocks, not escaped one-liners.
    assert "prompt.txt: |" in out
    ingresses = [item for item in objects if item["kind"] == "Ingress"]
    assert ingresses[0]["spec"]["rules"][0]["host"] == (
        f"summarizer--{environment}.preview.example.com"
    )
    for item in objects:
        assert not schema_errors(item)


def test_render_prints_production_as_a_json_list(example_git_repo: Path) -> None:
    code, out, _ = render_cli(
        "--repo",
        str(example_git_repo),
        "--branch",
        "main",
        "-o",
        "json",
        "--production-namespace",
        "agents",
        "--host-template",
        "https://{agent}.example.com/",
    )
    assert code == 0
    document = json.loads(out)
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "List"
    items = document["items"]
    assert {item["metadata"]["namespace"] for item in items} == {"agents"}
    assert "Namespace" not in {item["kind"] for item in items}
    hosts = [item["spec"]["rules"][0]["host"] for item in items if item["kind"] == "Ingress"]
    assert hosts == ["summarizer.example.com", "support-bot.example.com", "triage.example.com"]
    _, yaml_out, _ = render_cli(
        "--repo",
        str(example_git_repo),
        "--branch",
        "main",
        "--production-namespace",
        "agents",
        "--host-template",
        "https://{agent}.example.com/",
    )
    assert list(yaml.safe_load_all(yaml_out)) == items


def test_render_honours_default_branch_and_namespace_prefix(example_git_repo: Path) -> None:
    code, out, _ = render_cli(
        "--repo",
        str(example_git_repo),
        "--branch",
        "main",
        "--default-branch",
        "trunk",
        "--namespace-prefix",
        "sy-",
        "--host-template",
        "",
        "-o",
        "json",
    )
    assert code == 0
    items = json.loads(out)["items"]
    assert items[0]["kind"] == "Namespace"
    assert items[0]["metadata"]["name"] == "sy-preview-main"
    assert "Ingress" not in {item["kind"] for item in items}


def test_render_of_invalid_manifests_prints_problems_and_exits_1(example_git_repo: Path) -> None:
    manifest = example_git_repo / "agents" / "triage.yaml"
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace("temperature: 0.1", "temperature: 9"),
        encoding="utf-8",
    )
    git(example_git_repo, "checkout", "--quiet", "-b", "broken")
    git(example_git_repo, "commit", "--quiet", "-am", "Too hot")
    code, out, err = render_cli("--repo", str(example_git_repo), "--branch", "broken")
    assert code == 1
    assert out == ""
    assert "agents/triage.yaml" in err
    assert "spec.model.parameters.temperature" in err
    assert "error: 1 problem in broken" in err


def test_render_of_an_unknown_branch_is_an_error(example_git_repo: Path) -> None:
    with pytest.raises(ShipyardError, match='branch "nope" not found'):
        render_cli("--repo", str(example_git_repo), "--branch", "nope")
