"""`shipyard logs` on the Kubernetes target: every pod of the version, prefixed like kubectl.

A real `shipyard serve --target kubernetes` against the fake API server (whose pods log
the lines the test sets), and the real `shipyard logs` command line in a subprocess.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, wait_for
from tests.integration.test_kubernetes_serve import kubernetes_flags
from tests.integration.test_kubernetes_target import PRODUCTION_NS, manifest
from tests.streams import readline_within

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


@pytest.fixture
def served(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[Shipyard, FakeApiServer]]:
    fake = FakeApiServer(ready_delay=0.05).start()
    two = manifest("alpha").replace("spec:\n", "spec:\n  replicas: 2\n", 1)
    upstream.commit({"agents/alpha.yaml": two}, branch="main")
    upstream.push("main")
    fake.pods.set_logs(
        f"{PRODUCTION_NS}/alpha", ["listening on 8080", "ready"], previous=["crashed once"]
    )
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *kubernetes_flags(kubeconfig))
    shipyard.start()
    try:
        wait_for(
            lambda: any(a["ready"] for a in shipyard.environments()["production"]["agents"]),
            what="alpha to be ready",
        )
        yield shipyard, fake
    finally:
        shipyard.close()
        fake.stop()


def logs(shipyard: Shipyard, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHIPYARD, "logs", "alpha", "-e", "production", "--server", shipyard.api(""), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pod_names(fake: FakeApiServer) -> list[str]:
    pods = fake.registry.find("", "v1", "pods")
    assert pods is not None
    return sorted(
        pod["metadata"]["name"]
        for pod in fake.store.items(pods.key, PRODUCTION_NS)
        if pod["metadata"]["labels"].get("shipyard.dev/agent") == "alpha"
    )


def test_logs_prints_every_replica_with_a_kubectl_prefix(
    served: tuple[Shipyard, FakeApiServer],
) -> None:
    shipyard, fake = served
    pods = wait_for(lambda: pod_names(fake) if len(pod_names(fake)) == 2 else None, what="2 pods")
    result = logs(shipyard)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"[pod/{pod}/agent] {line}" for pod in pods for line in ("listening on 8080", "ready")
    ]
    tail = logs(shipyard, "--tail", "1", "--timestamps")
    lines = tail.stdout.splitlines()
    assert len(lines) == 2, tail.stdout
    assert all(re.match(r"\d{4}-\d\d-\d\dT[\d:]+\.\d{6}Z \[pod/alpha-", line) for line in lines)
    assert all(line.endswith("] ready") for line in lines)


def test_logs_previous_and_its_refusal(served: tuple[Shipyard, FakeApiServer]) -> None:
    shipyard, fake = served
    refused = logs(shipyard, "--previous")
    assert refused.returncode == 1
    assert "previous terminated container" in refused.stderr
    assert "Traceback" not in refused.stderr
    fake.pods.set_crash(f"{PRODUCTION_NS}/alpha", "CrashLoopBackOff")
    wait_for(lambda: "crashed once" in logs(shipyard, "--previous").stdout, what="previous logs")


def test_logs_follow_streams_lines_from_every_pod(served: tuple[Shipyard, FakeApiServer]) -> None:
    shipyard, fake = served
    wait_for(lambda: len(pod_names(fake)) == 2 or None, what="2 pods")
    follower = subprocess.Popen(
        [SHIPYARD, "logs", "alpha", "-e", "production", "--server", shipyard.api(""), "-f",
         "--tail", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        wait_for(lambda: _following(fake), what="two followed pod logs")
        fake.pods.append_log(f"{PRODUCTION_NS}/alpha", "a new request")
        seen = {
            readline_within(follower.stdout, what="a followed pod log line").strip()
            for _ in range(2)
        }
        assert {line.split("] ", 1)[1] for line in seen} == {"a new request"}
        assert len({line.split("] ", 1)[0] for line in seen}) == 2
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def _following(fake: FakeApiServer) -> bool:
    followed = [
        r for r in fake.requests.all() if r.path.endswith("/log") and ("follow", "true") in r.query
    ]
    return len(followed) >= 2
