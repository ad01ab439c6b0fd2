"""The kind e2e job's overlay (tests/e2e/in-cluster) still builds on the install manifests:
the controller runs this checkout's image, reads the in-cluster repository, and nothing
pulls the released image."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

OVERLAY = Path(__file__).resolve().parents[1] / "e2e" / "in-cluster"


def built() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not on PATH in CI")
        pytest.skip("kubectl is not installed")
    output = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
    ).stdout
    return [item for item in yaml.safe_load_all(output) if item]


def test_the_overlay_runs_this_checkouts_image_on_the_in_cluster_repository() -> None:
    objects = built()
    images = {
        container["image"]
        for item in objects
        if item["kind"] == "Deployment"
        for key in ("containers", "initContainers")
        for container in item["spec"]["template"]["spec"].get(key, [])
    }
    assert images == {"shipyard:e2e"}
    (config,) = [item for item in objects if item["kind"] == "ConfigMap"]
    repository = config["data"]["SHIPYARD_REPO"]
    (service,) = [item for item in objects if item["metadata"]["name"] == "agents-git"
                  and item["kind"] == "Service"]  # fmt: skip
    assert repository.startswith(f"git://{service['metadata']['name']}.shipyard-system.svc")
    names = {(item["kind"], item["metadata"]["name"]) for item in objects}
    assert ("Deployment", "shipyard-controller") in names
