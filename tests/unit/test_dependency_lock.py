"""The dependency lock `.ci/test` installs from: it pins, with hashes, a version of every
requirement that `pyproject.toml` and `requirements/tools.in` state, and the command that
made it is the one the docs tell a developer to run.

A requirement added to pyproject.toml without regenerating the lock fails here, with the
command to run, instead of as a missing import somewhere in the suite.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "test.lock"
TOOLS = ROOT / "requirements" / "tools.in"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match["name"])] = Version(match["version"])
    return found


def stated_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    for line in TOOLS.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            lines.append(requirement)
    return [Requirement(line) for line in lines]


def lock_command() -> str:
    """The command recorded in the lock's header by the tool that wrote it."""
    header = LOCK.read_text(encoding="utf-8").splitlines()[:3]
    commands = [line.removeprefix("#").strip() for line in header if "pip compile" in line]
    assert len(commands) == 1, header
    return commands[0]


@pytest.mark.parametrize("requirement", stated_requirements(), ids=str)
def test_every_stated_requirement_is_pinned_by_the_lock(requirement: Requirement) -> None:
    locked = pins()
    name = canonicalize_name(requirement.name)
    regenerate = f"the lock is stale; regenerate it with: {lock_command()}"
    assert name in locked, f"{requirement.name} is not in {LOCK.name}: {regenerate}"
    assert requirement.specifier.contains(locked[name], prereleases=True), (
        f"{LOCK.name} pins {name}=={locked[name]}, outside {requirement}: {regenerate}"
    )


def test_every_pin_carries_hashes_so_pip_can_require_them() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text(encoding="utf-8"))
    pinned = [block for block in blocks if PIN.match(block)]
    assert len(pinned) == len(pins()) > 0
    for block in pinned:
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_lock_was_made_by_the_documented_command() -> None:
    command = lock_command()
    assert command.startswith("uv pip compile pyproject.toml requirements/tools.in ")
    for page in ("docs/operations.md", "README.md"):
        assert command in (ROOT / page).read_text(encoding="utf-8"), page
