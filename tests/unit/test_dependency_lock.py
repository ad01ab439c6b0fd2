"""The dependency locks: `requirements/test.lock` (what `.ci/test` installs) and
`requirements/runtime.lock` (what the Dockerfile installs) pin, with hashes, a version of
every requirement that pyproject.toml and the `requirements/*.in` files state; the image
runs the versions the tests ran; and `requirements/lock.sh` is what made them.

A requirement added to pyproject.toml without regenerating the locks fails here, naming
the command to run, instead of as a missing import somewhere in the suite.
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
REQUIREMENTS = ROOT / "requirements"
TEST_LOCK = REQUIREMENTS / "test.lock"
RUNTIME_LOCK = REQUIREMENTS / "runtime.lock"
REGENERATE = "the lock is stale; regenerate it with: bash requirements/lock.sh"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


def pins(lock: Path) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match["name"])] = Version(match["version"])
    return found


def listed(requirements_in: str) -> list[str]:
    lines = (REQUIREMENTS / requirements_in).read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def project() -> dict[str, list[str]]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"dependencies": table["dependencies"], "test": table["optional-dependencies"]["test"]}


def stated(lock: Path) -> list[Requirement]:
    if lock == TEST_LOCK:
        lines = [*project()["dependencies"], *project()["test"], *listed("tools.in")]
    else:
        lines = [*project()["dependencies"], *listed("build.in")]
    return [Requirement(line) for line in lines]


CASES = [
    pytest.param(lock, requirement, id=f"{lock.name}:{requirement}")
    for lock in (TEST_LOCK, RUNTIME_LOCK)
    for requirement in stated(lock)
]


@pytest.mark.parametrize(("lock", "requirement"), CASES)
def test_every_stated_requirement_is_pinned(lock: Path, requirement: Requirement) -> None:
    locked = pins(lock)
    name = canonicalize_name(requirement.name)
    assert name in locked, f"{requirement.name} is not in {lock.name}: {REGENERATE}"
    assert requirement.specifier.contains(locked[name], prereleases=True), (
        f"{lock.name} pins {name}=={locked[name]}, outside {requirement}: {REGENERATE}"
    )


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    tested = pins(TEST_LOCK)
    differing = {
        name: (str(version), str(tested.get(name)))
        for name, version in pins(RUNTIME_LOCK).items()
        if tested.get(name) != version
    }
    assert not differing, f"runtime.lock differs from test.lock: {differing}; {REGENERATE}"


@pytest.mark.parametrize("lock", [TEST_LOCK, RUNTIME_LOCK], ids=lambda lock: lock.name)
def test_every_pin_carries_hashes_so_pip_can_require_them(lock: Path) -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8"))
    pinned = [block for block in blocks if PIN.match(block)]
    assert len(pinned) == len(pins(lock)) > 0
    for block in pinned:
        assert "--hash=sha256:" in block, block.splitlines()[0]


@pytest.mark.parametrize("lock", [TEST_LOCK, RUNTIME_LOCK], ids=lambda lock: lock.name)
def test_the_lock_was_made_by_the_lock_script(lock: Path) -> None:
    header = lock.read_text(encoding="utf-8").splitlines()[:3]
    commands = [line.removeprefix("#").strip() for line in header if "pip compile" in line]
    assert len(commands) == 1, header
    script = (REQUIREMENTS / "lock.sh").read_text(encoding="utf-8").splitlines()
    assert f'{commands[0]} "$@"' in script
