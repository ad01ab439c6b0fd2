"""The gateway's table from watched objects: which pods answer which host, at which weight."""

from __future__ import annotations

from typing import Any

from controller.api import gateway_routes


def host_of(agent: str, environment: str) -> str:
    return f"{agent}--{environment}.example.com"


def deployment(version: str, *, canary: bool = False, weight: str | None = None) -> dict[str, Any]:
    labels = {
        "shipyard.dev/agent": "bot",
        "shipyard.dev/environment": "production",
        "shipyard.dev/version": version,
    }
    annotations = {}
    if canary:
        labels["shipyard.dev/track"] = "canary"
        if weight is not None:
            annotations["shipyard.dev/canary-weight"] = weight
    name = "bot-canary" if canary else "bot"
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations}}


def pod(version: str, ip: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": f"bot-{ip}",
        "labels": {
            "shipyard.dev/agent": "bot",
            "shipyard.dev/environment": "production",
            "shipyard.dev/version": version,
        },
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


HOST = "bot--production.example.com"


def test_only_ready_pods_that_are_not_going_away_are_endpoints() -> None:
    table = gateway_routes.routes(
        [deployment("v1")],
        [pod("v1", "10.0.0.1"), pod("v1", "10.0.0.2", ready=False),
         pod("v1", "10.0.0.3", deleting=True)],
        host_of,
    )  # fmt: skip
    assert table[HOST].version == "v1"
    assert table[HOST].endpoints == (("10.0.0.1", 8080),)
    assert table[HOST].canary is None


def test_the_canary_gets_its_weight_only_with_ready_pods() -> None:
    deployments = [deployment("v1"), deployment("v2", canary=True, weight="30")]
    table = gateway_routes.routes(deployments, [pod("v1", "10.0.0.1")], host_of)
    assert table[HOST].canary is None  # no ready canary pod: all to stable
    table = gateway_routes.routes(
        deployments, [pod("v1", "10.0.0.1"), pod("v2", "10.0.0.2")], host_of
    )
    upstream = table[HOST]
    assert (upstream.version, upstream.canary_weight) == ("v1", 30)
    assert upstream.canary is not None
    assert upstream.canary.endpoints == (("10.0.0.2", 8080),)


def test_a_weight_that_is_not_a_number_or_out_of_range_is_bounded() -> None:
    pods = [pod("v1", "10.0.0.1"), pod("v2", "10.0.0.2")]
    for raw, expected in (("abc", 0), ("250", 100), ("-5", 0), (None, 0)):
        deployments = [deployment("v1"), deployment("v2", canary=True, weight=raw)]
        assert gateway_routes.routes(deployments, pods, host_of)[HOST].canary_weight == expected


def test_during_a_rolling_update_the_old_version_answers_until_the_new_one_is_ready() -> None:
    pods = [pod("v1", "10.0.0.1"), pod("v2", "10.0.0.2", ready=False)]
    assert gateway_routes.routes([deployment("v2")], pods, host_of)[HOST].version == "v1"
    pods = [pod("v1", "10.0.0.1"), pod("v2", "10.0.0.2")]
    assert gateway_routes.routes([deployment("v2")], pods, host_of)[HOST].version == "v2"


def test_no_ready_pod_means_no_route() -> None:
    assert gateway_routes.routes([deployment("v1")], [pod("v1", "1.1.1.1", ready=False)],
                                 host_of) == {}  # fmt: skip
