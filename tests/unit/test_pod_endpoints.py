"""Which pod the eval gate calls for a version: ready, not leaving, of the right track."""

from __future__ import annotations

from typing import Any

from controller.targets.kubernetes import canaries, pod_endpoints
from tests.integration.gateway_cluster import request


def pod(name: str, address: str, *, ready: bool = True, canary: bool = False,
        deleting: bool = False) -> dict[str, Any]:  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "labels": {}}
    if canary:
        metadata["labels"][canaries.TRACK] = canaries.CANARY_TRACK
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": metadata, "status": {"podIP": address, "conditions": [condition]}}


def test_a_ready_pod_of_the_asked_track_is_chosen_and_no_other() -> None:
    pods = [
        pod("a-stable", "127.0.0.2"),
        pod("b-canary-starting", "127.0.0.3", canary=True, ready=False),
        pod("c-canary-leaving", "127.0.0.4", canary=True, deleting=True),
        pod("d-canary", "127.0.0.5", canary=True),
    ]
    assert pod_endpoints.ready_address(pods, canary=True) == "127.0.0.5"
    assert pod_endpoints.ready_address(pods, canary=False) == "127.0.0.2"
    assert pod_endpoints.ready_address(pods[1:3], canary=True) is None


def test_the_container_port_comes_from_the_rendered_deployment() -> None:
    objects = request("alpha", "v1").objects
    assert pod_endpoints.container_port(objects) == 8080
    assert pod_endpoints.url("127.0.0.5", 8080) == "http://127.0.0.5:8080"
    assert pod_endpoints.url("fd00::5", 8080) == "http://[fd00::5]:8080"
