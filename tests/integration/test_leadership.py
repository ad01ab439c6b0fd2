"""A controller that does not lead says so: `/readyz`, the API and `shipyard get`.

Real `shipyard serve --target kubernetes` subprocesses against the fake API server, in
the two ways a replica ends up waiting: the Lease's namespace does not exist, or another
replica holds the Lease.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.leader import LeaderElection
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, wait_for
from tests.integration.test_kubernetes_target import manifest

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


def standby_controller(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer, lease_namespace: str
) -> Shipyard:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    flags = (
        "--target", "kubernetes", "--kubeconfig", str(kubeconfig),
        "--url-template", "https://{agent}--{env}.preview.example.com/",
        "--leader-election-namespace", lease_namespace,
    )  # fmt: skip
    return Shipyard(upstream.bare, tmp_path / "state", *flags).process_only()


def readyz_reason(shipyard: Shipyard) -> str | None:
    response = shipyard.http.get(shipyard.api("/readyz"))
    if response.status_code != 503:
        return None
    reason = response.json().get("reason")
    return reason if isinstance(reason, str) else None


def assert_everyone_is_told(shipyard: Shipyard, expected: str) -> None:
    # Until its first attempt the replica says only that it has not acquired the Lease.
    wait_for(lambda: readyz_reason(shipyard) == expected, what=f"/readyz to say {expected!r}")
    listed = shipyard.http.get(shipyard.api("/api/v1/environments"))
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    assert listed.json()["warnings"] == [expected]
    assert listed.headers["warning"] == f'299 - "{expected}"'
    got = subprocess.run(
        [SHIPYARD, "get", "environments", "--server", shipyard.api("")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert got.stdout == ""
    assert f"Warning: {expected}" in got.stderr.splitlines()
    assert "No resources found" in got.stderr


def test_missing_lease_namespace_is_reported_until_it_exists(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    shipyard = standby_controller(upstream, tmp_path, fake, "shipyard-system")
    try:
        assert_everyone_is_told(
            shipyard, "waiting for leadership: namespace shipyard-system not found"
        )
        client = KubeClient.from_config(str(tmp_path / "kubeconfig"))
        client.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shipyard-system"}}
        )
        wait_for(lambda: shipyard.http.get(shipyard.api("/readyz")).status_code == 200,
                 what="the controller to lead once the namespace exists")  # fmt: skip
        listed = shipyard.http.get(shipyard.api("/api/v1/environments"))
        assert listed.json()["warnings"] == []
        assert "warning" not in listed.headers
    finally:
        shipyard.close()


def test_lease_held_by_another_replica_is_reported(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    other = LeaderElection(
        KubeClient.from_config(str(kubeconfig)), "default", identity="replica-b", lease_seconds=600
    )
    assert other.try_acquire()
    shipyard = standby_controller(upstream, tmp_path, fake, "default")
    try:
        assert_everyone_is_told(shipyard, "waiting for leadership: held by replica-b")
    finally:
        shipyard.close()


def test_a_released_lease_is_taken_over_at_once(tmp_path: Path, fake: FakeApiServer) -> None:
    client = KubeClient.from_config(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    first = LeaderElection(client, "default", identity="one", lease_seconds=600)
    second = LeaderElection(client, "default", identity="two", lease_seconds=600)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert second.waiting == "held by one"
    assert first.release()
    # Long before the 600 s lease could lapse, the successor takes it.
    assert second.try_acquire()
    assert second.waiting is None
    assert not first.release()  # it no longer holds the Lease
    assert not first.try_acquire()
    assert first.waiting == "held by two"
