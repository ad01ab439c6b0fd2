"""Canary rollouts on the local target, end to end: real git pushes, a real `shipyard
serve`, real agent processes, real HTTP through the router and the real CLI.

A 30 % step is measured over a few hundred requests (within generous bounds: this is a
random draw), a sticky header keeps one caller on one version, `rollout promote` moves
past a pause, and a canary answering 500 is aborted by its errorRate analysis with all
traffic back on the stable version.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.store.records import RolloutResult
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, wait_for

SHIPYARD = Path(sys.executable).parent / "shipyard"

# Answers 200 with its version, or the status in ANSWER_STATUS (a broken canary).
AGENT = r"""
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        status = 200 if self.path == "/healthz" else int(os.environ.get("ANSWER_STATUS", "200"))
        body = json.dumps({"version": os.environ["SHIPYARD_VERSION"]}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def manifest(*, answer: int = 200, rollout: str = "") -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: alpha
spec:
  run:
    command: ["python3", "agent/canary_agent.py"]
  env:
    - name: ANSWER_STATUS
      value: "{answer}"
  model:
    provider: fake
    name: echo
  prompt:
    system: You are alpha.
  rollout:
    progressDeadlineSeconds: 20
{rollout}"""


PAUSED_AT_30 = """\
    strategy: Canary
    stickyHeader: x-conversation-id
    steps:
      - setWeight: 30
      - pause: {}
"""

ANALYSED_AT_50 = """\
    strategy: Canary
    steps:
      - setWeight: 50
      - pause: {}
    analysis:
      interval: 1s
      minRequests: 10
      errorRate:
        max: 0.05
"""


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    upstream.commit(
        {"agent/canary_agent.py": AGENT, "agents/alpha.yaml": manifest()},
        message="Add alpha",
        branch="main",
    )
    upstream.push("main")
    running = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        wait_for(lambda: running.serving("alpha", "production"), what="alpha serving")
        yield running
    finally:
        running.close()


def push_canary(shipyard: Shipyard, upstream: Upstream, text: str) -> tuple[str, str]:
    """Push `text` as alpha's manifest; (stable version, canary version) once it runs."""
    stable = shipyard.version_of("alpha", "production")
    assert stable is not None
    sha = upstream.commit({"agents/alpha.yaml": text}, message="Try a canary", branch="main")
    upstream.push("main")
    canary = shipyard.wait_desired("alpha", "production", sha)
    assert canary != stable
    return stable, canary


def describe(shipyard: Shipyard) -> dict[str, Any]:
    response = shipyard.http.get(shipyard.api("/api/v1/environments/production/agents/alpha"))
    response.raise_for_status()
    return dict(response.json())


def canary_phase(shipyard: Shipyard, phase: str) -> dict[str, Any] | None:
    progress = describe(shipyard).get("canary")
    return progress if progress and progress["phase"] == phase else None


def cli(shipyard: Shipyard, *arguments: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(SHIPYARD), *arguments, "--server", shipyard.api("")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def versions_answering(shipyard: Shipyard, count: int, **headers: str) -> Counter[str]:
    host = {"host": f"alpha--production.localhost:{shipyard.port}", **headers}
    seen: Counter[str] = Counter()
    for _ in range(count):
        response = shipyard.http.get(shipyard.api("/"), headers=host)
        assert response.headers["x-shipyard-version"] == response.json()["version"]
        seen[response.headers["x-shipyard-version"]] += 1
    return seen


def test_a_30_percent_step_sends_about_30_percent_and_promote_finishes_it(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    stable, canary = push_canary(shipyard, upstream, manifest(rollout=PAUSED_AT_30))
    paused = wait_for(lambda: canary_phase(shipyard, "Paused"), what="the canary's pause")
    assert (paused["step"], paused["steps"], paused["weight"]) == (2, 2, 30)

    seen = versions_answering(shipyard, 400)
    assert set(seen) == {stable, canary}
    # 400 draws at p = 0.3: the standard deviation is 2.3 points; these bounds are ±4.
    assert 0.20 <= seen[canary] / 400 <= 0.40, seen

    for conversation in ("c-1", "c-2", "c-3", "c-4"):
        pinned = versions_answering(shipyard, 15, **{"x-conversation-id": conversation})
        assert len(pinned) == 1, (conversation, pinned)

    status = cli(shipyard, "rollout", "status", "alpha", "-e", "production", "--no-watch")
    assert status.returncode == 3, status
    assert "step 2/2, weight 30%, Paused" in status.stdout
    wide = cli(shipyard, "get", "agents", "alpha", "-e", "production", "-o", "wide")
    assert "CANARY" in wide.stdout
    assert f"{canary} 30% 2/2" in wide.stdout, wide.stdout

    promoted = cli(shipyard, "rollout", "promote", "alpha", "-e", "production")
    assert promoted.returncode == 0, promoted
    done = cli(shipyard, "rollout", "status", "alpha", "-e", "production", "--timeout", "60s")
    assert done.returncode == 0, done
    assert versions_answering(shipyard, 20) == {canary: 20}
    assert shipyard.rollouts("alpha", "production")[-1].result is RolloutResult.HEALTHY
    steps = [e["message"] for e in describe(shipyard)["events"] if e["reason"] == "CanaryStep"]
    assert steps == [
        f"{canary} step 1/2: weight 30%",
        f"{canary} step 2/2: pause until `shipyard rollout promote`",
    ]


def test_a_canary_answering_500_is_aborted_by_its_error_rate(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    stable, canary = push_canary(shipyard, upstream, manifest(answer=500, rollout=ANALYSED_AT_50))
    wait_for(lambda: canary_phase(shipyard, "Paused"), what="the canary at 50 %")

    def aborted() -> dict[str, Any] | None:
        host = {"host": f"alpha--production.localhost:{shipyard.port}"}
        for _ in range(10):
            shipyard.http.get(shipyard.api("/"), headers=host)
        return canary_phase(shipyard, "Aborted")

    ended = wait_for(aborted, what="the errorRate analysis to abort the canary")
    assert ended["weight"] == 0
    assert "errorRate" in ended["message"]
    assert any(v["result"] == "Failed" for v in ended["verdicts"])

    assert versions_answering(shipyard, 30) == {stable: 30}
    described = describe(shipyard)
    assert described["agent"]["state"] == "Aborted"
    assert "errorRate" in described["agent"]["message"]
    latest = described["rollouts"][-1]
    assert (latest["to_version"], latest["result"]) == (canary, "Aborted")
    assert any(e["reason"] == "RolloutAborted" for e in described["events"])

    status = cli(shipyard, "rollout", "status", "alpha", "-e", "production", "--no-watch")
    assert status.returncode == 2, status
    assert "was aborted" in status.stderr

    refused = cli(shipyard, "rollout", "abort", "alpha", "-e", "production")
    assert refused.returncode == 1
    assert "no canary running" in refused.stderr


def test_abort_sends_every_request_back_to_stable(shipyard: Shipyard, upstream: Upstream) -> None:
    stable, _canary = push_canary(shipyard, upstream, manifest(rollout=PAUSED_AT_30))
    wait_for(lambda: canary_phase(shipyard, "Paused"), what="the canary's pause")
    aborted = cli(shipyard, "rollout", "abort", "alpha", "-e", "production")
    assert aborted.returncode == 0, aborted
    ended = wait_for(lambda: canary_phase(shipyard, "Aborted"), what="the abort")
    assert "aborted by" in ended["message"]
    assert versions_answering(shipyard, 20) == {stable: 20}
    with pytest.raises(httpx.HTTPStatusError):
        shipyard.http.post(
            shipyard.api("/api/v1/environments/production/agents/alpha/promote"), json={}
        ).raise_for_status()
