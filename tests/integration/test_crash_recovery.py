"""A controller SIGKILLed mid-rollout: on start-up every open rollout record ends.

Real `shipyard serve` subprocesses, killed with SIGKILL while a rollout is in progress
and started again on the same state directory. The record the dead process opened must
reach a final state (resumed under the same record, or closed with a reason), and no
second record may appear for the same move.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.records import Rollout, RolloutResult
from tests.fake_apiserver.controllers import Mode
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import controller_harness as local
from tests.integration.controller_harness import Shipyard, wait_for
from tests.integration.test_kubernetes_serve import kubernetes_flags
from tests.integration.test_kubernetes_target import PRODUCTION_NS, manifest, version_of


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


def records_for(shipyard: Shipyard, agent: str, commit: str) -> list[Rollout]:
    return [r for r in shipyard.rollouts(agent, "production") if r.commit == commit]


def progressing(shipyard: Shipyard, agent: str, commit: str) -> bool:
    return any(r.result is RolloutResult.PROGRESSING for r in records_for(shipyard, agent, commit))


def finished(shipyard: Shipyard, agent: str, commit: str) -> Rollout | None:
    records = records_for(shipyard, agent, commit)
    done = [r for r in records if r.result is not RolloutResult.PROGRESSING]
    return done[-1] if done and len(done) == len(records) else None


def start_killed_rollout(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer, mode: Mode
) -> tuple[Shipyard, str, str]:
    """Production alpha healthy, then a new version applied but unfinished, then SIGKILL."""
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    # No election: a successor would wait out the dead process's Lease (15 s) first.
    flags = kubernetes_flags(kubeconfig, "--no-leader-election")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *flags)
    shipyard.start()
    old = wait_for(lambda: version_of(fake, PRODUCTION_NS, "alpha"), what="production alpha")
    fake.deployments.set_mode("manual", f"{PRODUCTION_NS}/alpha")
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", 0.9, deadline=120)})
    upstream.push("main")
    wait_for(lambda: progressing(shipyard, "alpha", sha), what="the rollout to start")
    wait_for(lambda: version_of(fake, PRODUCTION_NS, "alpha") != old, what="the apply")
    shipyard.stop(signal.SIGKILL)
    # What the cluster does while no controller watches: finish, or get stuck.
    fake.deployments.set_mode(mode, f"{PRODUCTION_NS}/alpha", deadline=0.3)
    return shipyard, old, sha


def test_kubernetes_rollout_that_finished_while_down_is_closed_healthy(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    shipyard, _, sha = start_killed_rollout(upstream, tmp_path, fake, "ready")
    try:
        shipyard.start()
        record = wait_for(lambda: finished(shipyard, "alpha", sha), what="the record to end")
        assert record.result is RolloutResult.HEALTHY, record
        assert len(records_for(shipyard, "alpha", sha)) == 1
        assert version_of(fake, PRODUCTION_NS, "alpha") == record.to_version
        agents = {a["name"]: a for a in shipyard.environments()["production"]["agents"]}
        assert agents["alpha"]["ready"]
    finally:
        shipyard.close()


def test_kubernetes_rollout_stuck_while_down_is_rolled_back_after_restart(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    shipyard, old, sha = start_killed_rollout(upstream, tmp_path, fake, "stuck")
    try:
        shipyard.start()
        record = wait_for(lambda: finished(shipyard, "alpha", sha), what="the record to end")
        assert record.result is RolloutResult.ROLLED_BACK, record
        assert "ProgressDeadlineExceeded" in record.reason
        assert len(records_for(shipyard, "alpha", sha)) == 1
        wait_for(lambda: version_of(fake, PRODUCTION_NS, "alpha") == old, what="the rollback")
    finally:
        shipyard.close()


def test_local_rollout_no_longer_wanted_after_restart_is_closed_superseded(
    upstream: Upstream, tmp_path: Path
) -> None:
    local.seed(upstream, "alpha", "beta")
    shipyard = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        slow = local.manifest(
            "alpha", command='["sh", "-c", "sleep 30; exec python3 agent/server.py"]', deadline=60
        )
        sha = upstream.commit({"agents/alpha.yaml": slow}, branch="main")
        upstream.push("main")
        wait_for(lambda: progressing(shipyard, "alpha", sha), what="the rollout to start")
        shipyard.stop(signal.SIGKILL)
        # While the controller is down, the agent is taken out of the repository.
        upstream.commit({"agents/alpha.yaml": None}, branch="main")
        upstream.push("main")
        shipyard.start()
        record = wait_for(lambda: finished(shipyard, "alpha", sha), what="the record to end")
        assert record.result is RolloutResult.SUPERSEDED, record
        assert "controller restart" in record.reason
        assert "no longer declares alpha" in record.reason
        assert len(records_for(shipyard, "alpha", sha)) == 1
    finally:
        shipyard.close()
