"""`spec.rollout.requireEvals`: production runs the agent's eval suites on a new version
before it takes over, end to end.

Real git, `shipyard serve` as a process, the example agent as real processes, the router
in front: the stable version is evaluated through the router (it has all traffic), the
new one on its own port beside it. A prompt change that breaks a case passing on the
stable version is aborted before any request reaches it; the next push that fixes it
rolls out. Both for a RollingUpdate (gated before traffic switches) and for a Canary
(the evals are its first analysis, before its first step).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.store.records import RolloutResult
from tests.gitrepos import Upstream
from tests.integration.controller_harness import EXAMPLE_AGENT, Shipyard, wait_for
from tests.integration.test_evals_e2e import SUITE

CANARY = """\
    strategy: Canary
    steps:
      - setWeight: 50
      - pause: {}
"""


def agent_manifest(prompt: str, rollout: str = "") -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: alpha
spec:
  run:
    command: ["python3", "agent/server.py"]
  model:
    provider: fake
    name: echo
  prompt:
    system: {prompt}
  rollout:
    requireEvals: true
{rollout}"""


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    upstream.commit(
        {
            "agent/server.py": (EXAMPLE_AGENT / "server.py").read_text(),
            "agents/alpha.yaml": agent_manifest("You are polite."),
            "evals/alpha.yaml": SUITE,
        },
        branch="main",
    )
    upstream.push("main")
    running = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        wait_for(lambda: running.serving("alpha", "production"), what="alpha serving")
        yield running
    finally:
        running.close()


def prompt_served(shipyard: Shipyard) -> str:
    host = {"host": f"alpha--production.localhost:{shipyard.port}"}
    response = shipyard.http.get(shipyard.api("/"), headers=host)
    response.raise_for_status()
    return str(response.json()["prompt"])


def describe(shipyard: Shipyard) -> dict[str, Any]:
    response = shipyard.http.get(shipyard.api("/api/v1/environments/production/agents/alpha"))
    response.raise_for_status()
    return dict(response.json())


def push(shipyard: Shipyard, upstream: Upstream, prompt: str, rollout: str = "") -> str:
    """Push alpha with `prompt`; the version it asks for once the controller sees it."""
    sha = upstream.commit({"agents/alpha.yaml": agent_manifest(prompt, rollout)}, branch="main")
    upstream.push("main")
    return shipyard.wait_desired("alpha", "production", sha)


def ended(shipyard: Shipyard, version: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        rollouts = describe(shipyard)["rollouts"]
        latest = rollouts[-1] if rollouts else None
        if latest and latest["to_version"] == version and latest["result"] != "Progressing":
            return dict(latest)
        return None

    return wait_for(done, timeout=90, what=f"the rollout of {version} to end")


@pytest.mark.parametrize("rollout", ["", CANARY], ids=["RollingUpdate", "Canary"])
def test_a_version_breaking_a_passing_case_is_aborted_and_a_fix_rolls_out(
    shipyard: Shipyard, upstream: Upstream, rollout: str
) -> None:
    stable = shipyard.version_of("alpha", "production")
    first = [e for e in describe(shipyard)["events"] if e["reason"] == "EvalGateSkipped"]
    assert "no stable version to compare against" in first[0]["message"]
    broken = push(shipyard, upstream, "You are curt.", rollout)
    aborted = ended(shipyard, broken)
    assert aborted["result"] == "Aborted", aborted
    assert "evals failed: 1 case(s) passing on" in aborted["reason"]
    assert "alpha-golden/polite-prompt" in aborted["reason"]
    # Judged before it took any traffic: the gate and the decision are the record's lines.
    assert [step["kind"] for step in aborted["steps"]] == ["evals", "ended"]
    serving = shipyard.serving("alpha", "production")
    assert serving is not None
    assert serving["version"] == stable
    assert prompt_served(shipyard) == "You are polite."
    described = describe(shipyard)
    assert described["agent"]["state"] == "Aborted"
    assert any(
        e["reason"] == "RolloutAborted" and "polite-prompt" in e["message"]
        for e in described["events"]
    )

    fixed = push(shipyard, upstream, "You are polite. And brief.", rollout)
    if rollout:
        wait_for(
            lambda: (describe(shipyard).get("canary") or {}).get("step") == 2,
            timeout=90,
            what="the canary past its evals, at its pause",
        )
        shipyard.http.post(
            shipyard.api("/api/v1/environments/production/agents/alpha/promote"),
            json={"full": True},
        ).raise_for_status()
    promoted = ended(shipyard, fixed)
    assert promoted["result"] == RolloutResult.HEALTHY.value, promoted
    gate = promoted["steps"][0]
    assert (gate["kind"], gate["what"]) == (
        "evals",
        f"Passed: 3/3 cases pass; none passing on {stable} fails",
    )
    assert prompt_served(shipyard) == "You are polite. And brief."
