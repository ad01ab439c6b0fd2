"""Fixtures for tests that use real git: hermetic configuration and an upstream repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gitrepos import Upstream


@pytest.fixture(autouse=True)
def _hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own git config (signing, hooks, default branch) must not leak in.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path / "upstream")
