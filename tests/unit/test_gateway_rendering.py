"""What sends agent traffic through the gateway, rendered: Ingress backends, the per-namespace
ExternalName Service, the NetworkPolicy, the canary Deployment and HTTPRoute weights;
every Kubernetes object checked against the real OpenAPI schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from controller.targets.kubernetes import canaries, gateway_rendering, rendering

GATEWAY = ("shipyard-gateway", "shipyard-system")


def workload(
    name: str = "support-bot", version: str = "v1", environment: str = "preview-x"
) -> rendering.Workload:
    return rendering.Workload(
        name=name,
        environment=environment,
        version=version,
        commit="0" * 40,
        image="example/bot:1",
        model_provider="fake",
        model_name="fake-small",
        prompt="p",
        host=f"{name}--preview-x.example.com",
    )


def settings(gateway: tuple[str, str] | None = GATEWAY) -> rendering.EnvironmentSettings:
    return rendering.EnvironmentSettings(
        name="preview-x", namespace="preview-x", is_preview=True, gateway=gateway
    )


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in objects if item["kind"] == kind]


def test_with_a_gateway_ingresses_point_at_its_externalname_service() -> None:
    objects = rendering.render_environment([workload()], settings())
    (ingress,) = by_kind(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend == {"service": {"name": "shipyard-gateway", "port": {"number": 80}}}
    services = {item["metadata"]["name"]: item for item in by_kind(objects, "Service")}
    assert set(services) == {"support-bot", "shipyard-gateway"}
    named = services["shipyard-gateway"]["spec"]
    assert named["type"] == "ExternalName"
    assert named["externalName"] == "shipyard-gateway.shipyard-system.svc.cluster.local"
    (policy,) = by_kind(objects, "NetworkPolicy")
    admitted = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in policy["spec"]["ingress"][0]["from"]
        if "namespaceSelector" in peer
    ]
    assert admitted == ["ingress-nginx", "shipyard-system"]
    for item in objects:
        kubernetes_validate.validate(item, "1.32", strict=True)


def test_production_gets_the_gateway_service_too_and_without_a_gateway_nothing_changes() -> None:
    production = rendering.EnvironmentSettings(
        name="production", namespace="shipyard-production", is_preview=False, gateway=GATEWAY
    )
    names = [
        (item["kind"], item["metadata"]["name"])
        for item in rendering.render_environment([workload(environment="production")], production)
    ]
    assert ("Service", "shipyard-gateway") in names
    plain = rendering.render_environment([workload()], settings(gateway=None))
    (ingress,) = by_kind(plain, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == "support-bot"
    assert [s["metadata"]["name"] for s in by_kind(plain, "Service")] == ["support-bot"]


def test_a_gateway_that_is_not_service_dot_namespace_is_refused() -> None:
    with pytest.raises(rendering.RenderError, match=r"SERVICE\.NAMESPACE"):
        gateway_rendering.GatewayRef.parse("shipyard-gateway")
    with pytest.raises(rendering.RenderError, match=r"SERVICE\.NAMESPACE"):
        gateway_rendering.GatewayRef.parse("Gateway.Shipyard")
    assert gateway_rendering.GatewayRef.parse("gw.ns") == gateway_rendering.GatewayRef("gw", "ns")


def test_the_canary_deployment_has_its_own_selector_and_the_canary_track() -> None:
    objects = tuple(rendering.workload_objects(workload(version="v2"), settings()))
    rendered = canaries.canary_objects("support-bot", objects)
    assert [item["kind"] for item in rendered] == ["ConfigMap", "Deployment"]
    deployment = rendered[1]
    assert deployment["metadata"]["name"] == "support-bot-canary"
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert pod_labels["shipyard.dev/track"] == "canary"
    assert pod_labels["shipyard.dev/agent"] == "support-bot"
    assert pod_labels["shipyard.dev/version"] == "v2"
    # The stable Deployment and the agent's Service never select the canary's pods.
    (stable,) = [item for item in objects if item["kind"] == "Deployment"]
    (service,) = [item for item in objects if item["kind"] == "Service"]
    for chosen in (stable["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert not chosen.items() <= pod_labels.items()
    kubernetes_validate.validate(deployment, "1.32", strict=True)


def test_a_long_agent_name_gets_a_canary_name_within_a_dns_label() -> None:
    long = "a" * 60
    name = canaries.canary_name(long)
    assert len(name) <= 63
    assert rendering.is_dns_label(name)
    assert name.endswith("-canary")
    assert canaries.canary_name("b" * 60) != name


def test_httproute_weighs_the_stable_and_canary_services() -> None:
    parent = gateway_rendering.GatewayRef("public", "gateways")
    route = gateway_rendering.http_route(
        workload(), settings(), parent=parent, canary=("support-bot-canary", 30)
    )
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["spec"]["hostnames"] == ["support-bot--preview-x.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [
        {"name": "support-bot", "port": 80, "weight": 70},
        {"name": "support-bot-canary", "port": 80, "weight": 30},
    ]
    alone = gateway_rendering.http_route(workload(), settings(), parent=parent)
    assert alone["spec"]["rules"][0]["backendRefs"] == [
        {"name": "support-bot", "port": 80, "weight": 100}
    ]
    objects = rendering.workload_objects(workload(), settings())
    (service,) = [item for item in objects if item["kind"] == "Service"]
    canary_service = gateway_rendering.canary_service(service, "support-bot-canary")
    assert canary_service["spec"]["selector"]["app.kubernetes.io/name"] == "support-bot-canary"
    kubernetes_validate.validate(canary_service, "1.32", strict=True)
