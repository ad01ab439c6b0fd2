"""Releases: the tag must be `v` + pyproject.toml's version, manifests/ must run the image
of that version, and an overlay can pin the image by digest instead (manifests/README.md).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "release" / "check_version.py"
IMAGE = "ghcr.io/shipyard-dev/shipyard"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def check(tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), tag], capture_output=True, text=True, check=False
    )


def check_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_version", CHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_manifests_run_the_image_of_the_package_version() -> None:
    tags = check_module().manifest_image_tags()
    assert tags  # the controller and the gateway run the same image
    assert set(tags) == {version()}


def test_the_tag_of_this_version_passes() -> None:
    result = check(f"v{version()}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("tag", ["v9.9.9", version(), f"v{version()}-rc1"])
def test_a_tag_that_is_not_the_version_stops_the_release(tag: str) -> None:
    result = check(tag)
    assert result.returncode == 1
    assert f"tag {tag!r} is not 'v' + pyproject.toml's version {version()!r}" in result.stderr


def test_manifests_left_on_an_older_image_stop_the_release(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    deployment = tmp_path / "manifests" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace(f"{IMAGE}:{version()}", f"{IMAGE}:0.0.1"))
    found = check_module().problems(f"v{version()}", root=tmp_path)
    assert found == [f"manifests/ runs {IMAGE}:0.0.1, not the package version {version()}"]


def test_an_overlay_pins_the_image_by_digest(tmp_path: Path) -> None:
    """What `kustomize edit set image ghcr.io/shipyard-dev/shipyard@sha256:…` writes."""
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not on PATH in CI")
        pytest.skip("kubectl is not installed")
    base = os.path.relpath(ROOT / "manifests", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {base}\nimages:\n  - name: {IMAGE}\n    digest: {DIGEST}\n"
    )
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    assert f"image: {IMAGE}@{DIGEST}" in built
    assert f"{IMAGE}:{version()}" not in built
