"""Shared fixtures: small agents repositories written into temporary directories."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gitrepos import Upstream

VALID_AGENT = """\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
  labels:
    team: support
spec:
  run:
    command: ["python3", "agent/server.py"]
  model:
    provider: fake
    name: echo-1
    parameters:
      temperature: 0.2
  prompt:
    file: prompts/{name}.md
"""

WriteRepo = Callable[[dict[str, str | bytes]], Path]


def agent_yaml(name: str = "support-bot") -> str:
    return VALID_AGENT.format(name=name)


@pytest.fixture
def write_repo(tmp_path: Path) -> WriteRepo:
    """Write {relative path: content} into a fresh repository directory and return it."""

    def write(files: dict[str, str | bytes]) -> Path:
        root = tmp_path / "repo"
        for relative, content in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(textwrap.dedent(content), encoding="utf-8")
        root.mkdir(exist_ok=True)
        return root

    return write


@pytest.fixture(autouse=True)
def _hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own git config (signing, hooks, default branch) must not leak in.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """A bare remote and a working clone that pushes to it."""
    return Upstream(tmp_path / "upstream")
