"""pytest fixtures for the fake API server; import them into a conftest.py:

    from tests.fake_apiserver.fixtures import fake_apiserver, fake_kubeconfig  # noqa: F401

`fake_apiserver` is a fresh, running server per test (Deployments become ready after
50 ms; change with `fake_apiserver.deployments.set_mode(...)`); `fake_kubeconfig` is a
kubeconfig file for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_apiserver.server import FakeApiServer


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, f"the fake API server crashed: {server.crashes}"


@pytest.fixture
def fake_kubeconfig(fake_apiserver: FakeApiServer, tmp_path: Path) -> Path:
    return fake_apiserver.kubeconfig(tmp_path / "kubeconfig")
