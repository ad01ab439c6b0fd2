"""Push a branch → preview URL; merge → production; end to end on the local target.

Real git (a bare remote, a clone, real pushes), a real `shipyard serve` process, real
agent processes, and real HTTP through the built-in router.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.records import RolloutResult
from tests.gitrepos import Upstream
from tests.integration.controller_harness import (
    Shipyard,
    manifest,
    preview_of,
    seed,
    wait_for,
)


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    seed(upstream, "alpha", "beta")
    running = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        yield running
    finally:
        running.close()


def test_production_serves_the_default_branch(shipyard: Shipyard) -> None:
    body = shipyard.serving("alpha", "production")
    assert body is not None
    assert body["environment"] == "production"
    response = shipyard.agent("alpha", "production", "/healthz?probe=1")
    assert response.headers["x-shipyard-environment"] == "production"
    assert response.headers["x-shipyard-version"] == body["version"]
    production = shipyard.environments()["production"]
    ready = {c["type"]: c["status"] for c in production["conditions"]}
    assert ready["Ready"] == "True"
    assert {a["name"] for a in production["agents"]} == {"alpha", "beta"}


def test_router_preserves_method_body_and_status(shipyard: Shipyard) -> None:
    host = {"host": f"alpha--production.localhost:{shipyard.port}"}
    reply = shipyard.http.post(shipyard.api("/chat"), json={"message": "hi there"}, headers=host)
    assert reply.status_code == 200
    assert "hi there" in reply.text
    bad = shipyard.http.post(shipyard.api("/chat"), content=b"{not json", headers=host)
    assert bad.status_code == 400
    missing = shipyard.http.get(shipyard.api("/nope"), headers=host)
    assert missing.status_code == 404


def test_unknown_host_lists_what_exists(shipyard: Shipyard) -> None:
    response = shipyard.agent("gamma", "production")
    assert response.status_code == 404
    body = response.json()
    assert "no agent is served at gamma--production.localhost" in body["error"]
    assert "http://alpha--production.localhost" in body["available"]


def test_branch_gets_a_preview_and_a_second_push_rolls_only_what_changed(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    production_alpha = shipyard.serving("alpha", "production")
    assert production_alpha is not None
    sha = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.9)}, branch="feature/warm"
    )
    upstream.push("feature/warm")
    environment = preview_of("feature/warm")
    version = shipyard.wait_desired("alpha", environment, sha)
    assert version != production_alpha["version"]
    preview_alpha = shipyard.wait_version("alpha", environment, version)
    assert preview_alpha["commit"] == sha
    # The preview runs every agent of its branch, beta unchanged (its rollout runs
    # beside alpha's and may finish a moment later).
    beta = wait_for(lambda: shipyard.serving("beta", environment), what="beta in the preview")
    beta_rollouts = len(shipyard.rollouts("beta", environment))

    second = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=1.1)}, branch="feature/warm"
    )
    upstream.push("feature/warm")
    newer = shipyard.wait_desired("alpha", environment, second)
    shipyard.wait_version("alpha", environment, newer)
    assert len(shipyard.rollouts("beta", environment)) == beta_rollouts
    assert shipyard.serving("beta", environment) == beta
    # Production never moved.
    assert shipyard.serving("alpha", "production") == production_alpha


def test_merge_promotes_to_production_and_tears_the_preview_down(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.5)}, branch="feature/x")
    upstream.push("feature/x")
    environment = preview_of("feature/x")
    wait_for(lambda: environment in shipyard.environments(), what="the preview")
    upstream.git("checkout", "--quiet", "main")
    upstream.git("merge", "--quiet", "--no-ff", "-m", "Merge feature/x", "feature/x")
    merged = upstream.git("rev-parse", "HEAD")
    upstream.push("main")
    version = shipyard.wait_desired("alpha", "production", merged)
    shipyard.wait_version("alpha", "production", version)
    wait_for(lambda: environment not in shipyard.environments(), what="the preview to go")
    assert shipyard.agent("alpha", environment).status_code == 404


def test_deleted_branch_tears_its_preview_down(shipyard: Shipyard, upstream: Upstream) -> None:
    upstream.commit({"agents/beta.yaml": manifest("beta", temperature=0.3)}, branch="tmp")
    upstream.push("tmp")
    environment = preview_of("tmp")
    wait_for(lambda: shipyard.serving("beta", environment), what="the preview")
    upstream.push(":tmp")
    wait_for(lambda: environment not in shipyard.environments(), what="the preview to go")
    assert shipyard.agent("beta", environment).status_code == 404


def test_invalid_manifest_on_main_keeps_production_serving(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    before = shipyard.serving("alpha", "production")
    bad = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=3.5)}, branch="main")
    upstream.push("main")

    def stalled() -> dict[str, str] | None:
        production = shipyard.environments()["production"]
        conditions = {c["type"]: c for c in production["conditions"]}
        if production["commit"] == bad and conditions["Stalled"]["status"] == "True":
            return conditions["Stalled"]  # type: ignore[no-any-return]
        return None

    condition = wait_for(stalled, what="production to stall")
    assert condition["reason"] == "ManifestInvalid"
    assert (
        "spec.model.parameters.temperature: 3.5 is greater than the maximum of 2"
        in (condition["message"])
    )
    assert shipyard.serving("alpha", "production") == before


def test_force_push_moves_the_preview_to_the_rewritten_commit(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.6)}, branch="rewrite")
    upstream.push("rewrite")
    environment = preview_of("rewrite")
    wait_for(lambda: shipyard.serving("alpha", environment), what="the preview")
    upstream.git("reset", "--quiet", "--hard", "main")
    rewritten = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.7)}, branch="rewrite"
    )
    upstream.push("rewrite", force=True)
    version = shipyard.wait_desired("alpha", environment, rewritten)
    assert shipyard.wait_version("alpha", environment, version)["commit"] == rewritten


@pytest.mark.parametrize(
    "branch",
    [
        pytest.param("feature/deep/slashes", id="slashes"),
        pytest.param("fix/ümlaut-日本", id="unicode"),
        pytest.param("b" * 200, id="200-chars"),
        pytest.param("x$(touch${IFS}pwned)`touch${IFS}pwned`;&|'\"<>", id="shell-metacharacters"),
    ],
)
def test_hostile_branch_names_get_working_previews(
    shipyard: Shipyard, upstream: Upstream, branch: str
) -> None:
    upstream.commit({"agents/beta.yaml": manifest("beta", temperature=0.4)}, branch=branch)
    upstream.push(branch)
    environment = preview_of(branch)
    assert len(f"beta--{environment}") <= 63
    body = wait_for(lambda: shipyard.serving("beta", environment), what=f"preview of {branch!r}")
    assert body["environment"] == environment
    assert shipyard.environments()[environment]["branch"] == branch
    assert not (upstream.work / "pwned").exists()
    assert not (shipyard.state / "pwned").exists()


def test_agent_that_crashes_on_start_fails_and_the_old_version_keeps_serving(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    before = shipyard.serving("beta", "production")
    assert before is not None
    crashing = manifest("beta", command='["python3", "-c", "import sys; sys.exit(3)"]', deadline=5)
    sha = upstream.commit({"agents/beta.yaml": crashing}, branch="main")
    upstream.push("main")

    def failed() -> dict[str, object] | None:
        production = shipyard.environments()["production"]
        agents = {a["name"]: a for a in production["agents"]}
        done = production["commit"] == sha and agents["beta"]["state"] == "Failed"
        return agents["beta"] if done else None

    beta = wait_for(failed, timeout=60, what="beta to fail")
    assert beta["version"] == before["version"]
    assert shipyard.serving("beta", "production") == before
    (rollout,) = [r for r in shipyard.rollouts("beta", "production") if r.commit == sha]
    assert rollout.result is RolloutResult.ROLLED_BACK
    assert f"{before['version']} keeps serving" in rollout.reason


def test_sigkill_mid_rollout_converges_without_duplicate_records(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    slow = manifest(
        "alpha", command='["sh", "-c", "sleep 3; exec python3 agent/server.py"]', deadline=30
    )
    sha = upstream.commit({"agents/alpha.yaml": slow}, branch="main")
    upstream.push("main")
    wait_for(
        lambda: any(
            r.commit == sha and r.result is RolloutResult.PROGRESSING
            for r in shipyard.rollouts("alpha", "production")
        ),
        what="the rollout to start",
    )
    shipyard.stop(signal.SIGKILL)
    shipyard.start()
    version = shipyard.wait_desired("alpha", "production", sha)
    shipyard.wait_version("alpha", "production", version)
    records = [r for r in shipyard.rollouts("alpha", "production") if r.to_version == version]
    assert len(records) == 1, records
    assert records[0].result is RolloutResult.HEALTHY
    # beta was unchanged: restored after the restart, never rolled out again.
    assert len(shipyard.rollouts("beta", "production")) == 1
