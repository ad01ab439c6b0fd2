"""Canaries judged by the real Prometheus and steered step by step, end to end.

A real `shipyard serve` with `--prometheus-url`, the Debian `prometheus` binary scraping
it every second, real agent processes behind the router and the real CLI: a PromQL
analysis passes a healthy canary and aborts one answering 500; `rollout pause` holds a
canary at its step (a timed pause stops counting) until `rollout resume`; the rollout's
record lists every step and every steering action, and `rollout history --revision`
shows them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.store.records import RolloutResult
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, wait_for
from tests.integration.prometheus_server import Prometheus, binary
from tests.integration.test_canary_rollouts import (
    AGENT,
    canary_phase,
    cli,
    describe,
    manifest,
    push_canary,
    versions_answering,
)

REQUESTS = 'shipyard_agent_requests_total{agent="{{agent}}",environment="{{environment}}"'
# A canary with no good answer has no non-5xx series at all: `or vector(0)` makes that 0.
SUCCESS_RATE = (
    f'(sum({REQUESTS},version="{{{{canary}}}}",code!~"5.."}}) or vector(0)) '
    f'/ sum({REQUESTS},version="{{{{canary}}}}"}})'
)

QUERIED = f"""\
    strategy: Canary
    steps:
      - setWeight: 50
      - analysis:
          interval: 1s
          prometheus:
            - name: success-rate
              query: '{SUCCESS_RATE}'
              successCondition: result >= 0.95
      - pause: {{}}
"""

STEERED = """\
    strategy: Canary
    steps:
      - setWeight: 30
      - pause: {duration: 6s}
      - setWeight: 60
      - pause: {}
"""


@pytest.fixture
def prometheus_shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    upstream.commit(
        {"agent/canary_agent.py": AGENT, "agents/alpha.yaml": manifest()},
        message="Add alpha",
        branch="main",
    )
    upstream.push("main")
    running = Shipyard(upstream.bare, tmp_path / "state")
    prometheus = Prometheus(
        binary("prometheus"), tmp_path / "prometheus", f"127.0.0.1:{running.port}"
    )
    running.extra = ("--prometheus-url", f"http://127.0.0.1:{prometheus.port}")
    try:
        running.start()
        prometheus.wait_ready()
        wait_for(lambda: running.serving("alpha", "production"), what="alpha serving")
        yield running
    finally:
        running.close()
        prometheus.close()


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


def traffic_until(shipyard: Shipyard, phase: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        host = {"host": f"alpha--production.localhost:{shipyard.port}"}
        for _ in range(10):
            shipyard.http.get(shipyard.api("/"), headers=host)
        return canary_phase(shipyard, phase)

    return wait_for(reached, what=f"the canary to reach {phase}")


def test_a_promql_analysis_passes_a_good_canary_and_aborts_a_failing_one(
    prometheus_shipyard: Shipyard, upstream: Upstream
) -> None:
    shipyard = prometheus_shipyard
    _stable, good = push_canary(shipyard, upstream, manifest(rollout=QUERIED))
    # The query has no data until Prometheus scraped the canary's requests: it holds.
    held = traffic_until(shipyard, "Paused")  # past the analysis step, at the last pause
    assert (held["step"], held["canary"]) == (3, good)
    verdicts = [v for v in held["verdicts"] if v["analysis"] == "step 2 analysis"]
    assert verdicts[-1]["result"] == "Passed"
    assert "success-rate 1 (result >= 0.95)" in verdicts[-1]["message"]
    assert cli(shipyard, "rollout", "promote", "alpha", "-e", "production").returncode == 0
    wait_for(
        lambda: shipyard.rollouts("alpha", "production")[-1].result is RolloutResult.HEALTHY,
        what="the promotion",
    )

    _stable, bad = push_canary(shipyard, upstream, manifest(answer=500, rollout=QUERIED))
    ended = traffic_until(shipyard, "Aborted")
    assert "step 2 analysis failed: success-rate 0 (result >= 0.95)" in ended["message"]
    assert versions_answering(shipyard, 20) == {good: 20}
    latest = describe(shipyard)["rollouts"][-1]
    assert (latest["to_version"], latest["result"]) == (bad, "Aborted")


def test_a_query_without_a_prometheus_url_aborts_and_says_why(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    stable, _canary = push_canary(shipyard, upstream, manifest(rollout=QUERIED))
    ended = wait_for(lambda: canary_phase(shipyard, "Aborted"), what="the abort")
    assert "--prometheus-url" in ended["message"]
    assert versions_answering(shipyard, 10) == {stable: 10}


def resume_and_promote_the_steered_canary(shipyard: Shipyard) -> list[tuple[str, str]]:
    """`rollout resume` a STEERED canary held at step 2, then promote it at its last
    pause; the (kind, what) lines of its rollout record, each of its steps begun once."""
    resumed = cli(shipyard, "rollout", "resume", "alpha", "-e", "production")
    assert resumed.returncode == 0, resumed
    last = wait_for(
        lambda: (p := canary_phase(shipyard, "Paused")) and p["step"] == 4 and p,
        what="the canary at its last pause",
    )
    assert last["weight"] == 60
    assert cli(shipyard, "rollout", "promote", "alpha", "-e", "production").returncode == 0
    wait_for(
        lambda: shipyard.rollouts("alpha", "production")[-1].result is RolloutResult.HEALTHY,
        what="the promotion",
    )
    rollout = describe(shipyard)["rollouts"][-1]
    kinds = [(str(step["kind"]), str(step["what"])) for step in rollout["steps"]]
    assert [what for kind, what in kinds if kind == "step"] == [
        "weight 30%",
        "pause 6s",
        "weight 60%",
        "pause until `shipyard rollout promote`",
    ]
    return kinds


def test_pause_holds_a_canary_at_its_step_until_resume_and_history_lists_each_step(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    stable, canary = push_canary(shipyard, upstream, manifest(rollout=STEERED))
    wait_for(
        lambda: (describe(shipyard).get("canary") or {}).get("step") == 2, what="the timed pause"
    )
    paused = cli(shipyard, "rollout", "pause", "alpha", "-e", "production", "--reason", "look")
    assert paused.returncode == 0, paused
    assert f"canary {canary} paused at step 2/4 (weight 30%)" in paused.stdout
    held = wait_for(lambda: canary_phase(shipyard, "Paused"), what="the hold")
    assert held["message"].startswith("paused at step 2/4, weight 30% by "), held
    assert held["message"].endswith(": look"), held
    assert held["held"]
    again = cli(shipyard, "rollout", "pause", "alpha", "-e", "production")
    assert again.returncode == 1, again
    assert "already paused" in again.stderr
    # Longer than the timed pause: a held canary stays where it is.
    time.sleep(7)
    still = describe(shipyard)["canary"]
    assert (still["phase"], still["step"], still["weight"]) == ("Paused", 2, 30)
    assert set(versions_answering(shipyard, 40)) == {stable, canary}

    kinds = resume_and_promote_the_steered_canary(shipyard)
    assert [kind for kind, _ in kinds if kind != "step"] == ["pause", "resume", "promote", "ended"]
    assert ("ended", "Promoted: every step passed") in kinds
    revision = max(
        r["number"]
        for r in shipyard.http.get(
            shipyard.api("/api/v1/revisions"),
            params={"agent": "alpha", "environment": "production"},
        ).json()["items"]
    )
    history = cli(
        shipyard, "rollout", "history", "alpha", "-e", "production", "--revision", str(revision)
    )
    assert history.returncode == 0, history
    assert "Rollouts:" in history.stdout
    assert "step 3/4" in history.stdout
    assert "weight 60%" in history.stdout
    assert "resume" in history.stdout


def test_a_controller_killed_mid_canary_resumes_it_at_its_step_and_hold(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    stable, canary = push_canary(shipyard, upstream, manifest(rollout=STEERED))
    wait_for(
        lambda: (describe(shipyard).get("canary") or {}).get("step") == 2, what="the timed pause"
    )
    held = cli(shipyard, "rollout", "pause", "alpha", "-e", "production", "--reason", "look")
    assert held.returncode == 0, held
    wait_for(lambda: canary_phase(shipyard, "Paused"), what="the hold")

    shipyard.stop(signal.SIGKILL)  # no shutdown at all: as a node lost or an OOM kill
    shipyard.start()
    resumed = wait_for(lambda: canary_phase(shipyard, "Paused"), what="the canary back, held")
    assert (resumed["step"], resumed["weight"], resumed["canary"]) == (2, 30, canary), resumed
    assert resumed["held"], resumed
    assert resumed["message"].startswith("paused at step 2/4, weight 30% by "), resumed
    # Still held past what was left of the timed pause: a hold outlives the restart.
    time.sleep(7)
    assert canary_phase(shipyard, "Paused") is not None
    assert set(versions_answering(shipyard, 40)) == {stable, canary}

    # One record, each step begun once: the restart did not start the canary over.
    kinds = resume_and_promote_the_steered_canary(shipyard)
    assert [kind for kind, _ in kinds if kind != "step"] == [
        "pause", "resumed", "resume", "promote", "ended"
    ]  # fmt: skip
    assert "at step 2/4, weight 30% after a controller restart" in dict(kinds)["resumed"]
    resumed_events = [e for e in describe(shipyard)["events"] if e["reason"] == "CanaryResumed"]
    assert [e["message"] for e in resumed_events] == [
        f"{canary} resumed at step 2/4, weight 30% after a controller restart"
    ]
