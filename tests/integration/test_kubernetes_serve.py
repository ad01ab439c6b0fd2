"""`shipyard serve --target kubernetes` as an operator runs it, against the fake API server.

Two controllers share one cluster: leader election lets exactly one of them act.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.sqlite import Store
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, preview_of, wait_for
from tests.integration.test_kubernetes_target import PRODUCTION_NS, manifest, version_of


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()


def kubernetes_flags(kubeconfig: Path, *extra: str) -> tuple[str, ...]:
    return (
        "--target", "kubernetes", "--kubeconfig", str(kubeconfig),
        "--url-template", "https://{agent}--{env}.preview.example.com/",
        "--leader-election-namespace", "default", *extra,
    )  # fmt: skip


def rollouts(state: Path) -> int:
    store = Store(state / "shipyard.db")
    try:
        return len(store.rollouts())
    finally:
        store.close()


def test_serve_deploys_production_and_previews_to_the_cluster(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *kubernetes_flags(kubeconfig))
    shipyard.start()
    try:
        wait_for(lambda: version_of(fake, PRODUCTION_NS, "alpha"), what="production alpha")
        sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", 0.8)}, branch="feature")
        upstream.push("feature")
        environment = preview_of("feature")
        version = shipyard.wait_desired("alpha", environment, sha)
        wait_for(lambda: version_of(fake, environment, "alpha") == version, what="the preview")
        item = wait_for(
            lambda: next(
                (a for a in shipyard.environments()[environment]["agents"] if a["ready"]), None
            ),
            what="the preview to be ready",
        )
        assert item["url"] == f"https://alpha--{environment}.preview.example.com/"
    finally:
        shipyard.close()


def test_two_controllers_only_the_leader_acts(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    first = Shipyard(upstream.bare, tmp_path / "one" / "state", *kubernetes_flags(kubeconfig))
    second = Shipyard(upstream.bare, tmp_path / "two" / "state", *kubernetes_flags(kubeconfig))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first.start()
    try:
        wait_for(lambda: version_of(fake, PRODUCTION_NS, "alpha"), what="the first to deploy")
        second.process_only()
        time.sleep(3)
        lease = fake.get_object(
            "coordination.k8s.io/v1", "leases", "shipyard-controller", "default"
        )
        assert lease is not None
        holders = {lease["spec"]["holderIdentity"]}
        assert len(holders) == 1
        assert rollouts(tmp_path / "one" / "state") == 1
        assert (
            not (tmp_path / "two" / "state" / "shipyard.db").exists()
            or rollouts(tmp_path / "two" / "state") == 0
        )
    finally:
        second.close()
        first.close()
