"""The controller image's install step, run without Docker.

The Dockerfile's build stage is replayed here: its COPY instructions lay out the same
files (so a file the install needs but the Dockerfile forgets to copy fails here), its
RUN installs into a temporary venv instead of /opt/shipyard, and the result must be
exactly the versions of requirements/runtime.lock plus Shipyard, with a working
`shipyard` command. The runtime stage's promises (non-root numeric user, the entry point,
no HEALTHCHECK) are read from the Dockerfile itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VENV_IN_IMAGE = "/opt/shipyard"
Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined."""
    found: list[Instruction] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        current = ""
    return found


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for keyword, arguments in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def build_stage() -> list[Instruction]:
    (stage,) = [s for s in stages() if s[0][1].lower().endswith(" as build")]
    return stage


def replay_copies(stage: list[Instruction], image_root: Path) -> Path:
    """The files the build stage's COPY instructions put in place; returns its WORKDIR."""
    workdir = image_root
    for keyword, arguments in stage:
        if keyword == "WORKDIR":
            workdir = image_root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not any(source.startswith("--") for source in sources), arguments
            target = workdir / destination
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info")
                    shutil.copytree(path, target, ignore=ignored, dirs_exist_ok=True)
                elif destination.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target / path.name)
                else:
                    shutil.copy2(path, target)
    return workdir


def locked_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    lock = (ROOT / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    for match in re.finditer(r"^([A-Za-z0-9][\w.-]*)==(\S+)", lock, re.M):
        pins[str(canonicalize_name(match[1]))] = match[2]
    return pins


def package_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_the_build_stage_installs_the_locked_versions_and_a_working_shipyard(
    tmp_path: Path,
) -> None:
    stage = build_stage()
    runs = [arguments for keyword, arguments in stage if keyword == "RUN"]
    assert len(runs) == 1, runs
    assert VENV_IN_IMAGE in runs[0]
    workdir = replay_copies(stage, tmp_path / "image")
    venv = tmp_path / "venv"

    # Byte-compiling the kubernetes client's thousands of modules is most of the install's
    # time and changes nothing this test reads; the image keeps it (read-only root).
    environment = {**os.environ, "PIP_NO_COMPILE": "1"}
    subprocess.run(
        ["bash", "-c", runs[0].replace(VENV_IN_IMAGE, str(venv))],
        cwd=workdir, env=environment, check=True, capture_output=True, text=True,
    )  # fmt: skip

    shipyard = venv / "bin" / "shipyard"
    version = subprocess.run([shipyard, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"shipyard, version {package_version()}"
    for arguments in (["--help"], ["serve", "--help"]):
        shown = subprocess.run([shipyard, *arguments], capture_output=True, text=True, check=True)
        assert "Usage: shipyard" in shown.stdout
    listed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    installed = {
        str(canonicalize_name(item["name"])): item["version"] for item in json.loads(listed)
    }
    assert installed.pop("shipyard") == package_version()
    assert installed == locked_pins()


def test_the_runtime_stage_runs_shipyard_unprivileged_without_a_healthcheck() -> None:
    runtime = stages()[-1]
    keywords = [keyword for keyword, _ in runtime]
    values = dict(runtime)
    assert f"--from=build {VENV_IN_IMAGE} {VENV_IN_IMAGE}" in values["COPY"]
    assert re.fullmatch(r"\d+:\d+", values["USER"]), values["USER"]
    assert not values["USER"].startswith("0:")
    assert json.loads(values["ENTRYPOINT"]) == ["shipyard"]
    assert "HEALTHCHECK" not in keywords
    assert "git" in values["RUN"].split()
