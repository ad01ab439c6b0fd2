"""Agents that misbehave cannot freeze the controller or make it lie, end to end.

A real `shipyard serve` on a real git remote runs agents that leave detached children
holding their output pipes, crash in a loop, or are SIGKILLed; the controller must keep
deploying, report what really serves, and stop everything on SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.store.records import RolloutResult
from controller.store.sqlite import Store
from tests.gitrepos import Upstream
from tests.integration.controller_harness import (
    EXAMPLE_AGENT,
    Shipyard,
    dump,
    preview_of,
    wait_for,
)

# Records every pid it runs as (and those of the children it leaves) in
# `<agent>--<environment>.pids` in its working directory (the commit's checkout), exits
# at once while `<agent>--<environment>.crash` exists there, and with DETACH=1 leaves two
# children holding its stdout and stderr: one in a session of its own (`setsid sleep &`),
# one a double-forked daemon. While the file named by HOLD exists, it waits before
# serving. Then it becomes the example agent (same pid).
SUPERVISED_AGENT = """\
import os, subprocess, sys, time

name = os.environ["SHIPYARD_AGENT"] + "--" + os.environ["SHIPYARD_ENVIRONMENT"]
while os.environ.get("HOLD") and os.path.exists(os.environ["HOLD"]):
    time.sleep(0.1)
if os.path.exists(name + ".crash"):
    sys.exit(3)
pids = [os.getpid()]
if os.environ.get("DETACH") == "1":
    pids.append(subprocess.Popen(["sleep", "1000"], start_new_session=True).pid)
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            while True:
                print("daemon still here", flush=True)
                time.sleep(0.5)
        os._exit(0)
    os.close(write_end)
    pids.append(int(os.read(read_end, 32)))
    os.wait()
with open(name + ".pids", "a") as record:
    record.write("".join(f"{pid}\\n" for pid in pids))
os.execv(sys.executable, [sys.executable, "agent/server.py"])
"""

FAST_RESTARTS = ("--restart-backoff", "0.2s", "--restart-backoff-cap", "1s")


def agent_manifest(
    name: str, *, detach: bool = False, temperature: float = 0.2, hold: Path | None = None
) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  run:
    command: ["python3", "agent/supervised.py"]
  env:
    - name: DETACH
      value: "{1 if detach else 0}"
    - name: HOLD
      value: "{hold or ""}"
  model:
    provider: fake
    name: echo
    parameters:
      temperature: {temperature}
  prompt:
    system: You are {name}.
  rollout:
    progressDeadlineSeconds: 20
"""


def seed(upstream: Upstream, **agents: str) -> str:
    files: dict[str, str | None] = {
        "agent/server.py": (EXAMPLE_AGENT / "server.py").read_text(),
        "agent/supervised.py": SUPERVISED_AGENT,
    }
    files.update({f"agents/{name}.yaml": text for name, text in agents.items()})
    sha = upstream.commit(files, message="Add agents", branch="main")
    upstream.push("main")
    return sha


def recorded_pids(shipyard: Shipyard, sha: str, agent: str, environment: str) -> list[int]:
    path = shipyard.state / "checkouts" / sha / f"{agent}--{environment}.pids"
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def alive(pid: int) -> bool:
    """True if `pid` runs; a zombie nobody reaped yet counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def agent_status(shipyard: Shipyard, agent: str, environment: str) -> dict[str, Any] | None:
    env = shipyard.environments().get(environment)
    if env is None:
        return None
    return next((item for item in env["agents"] if item["name"] == agent), None)


@pytest.fixture
def shipyards() -> Iterator[list[Shipyard]]:
    started: list[Shipyard] = []
    try:
        yield started
    finally:
        for shipyard in started:
            shipyard.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_every_agent_tree_exits_zero_and_a_restart_restores_without_a_rollout(
    upstream: Upstream, tmp_path: Path, shipyards: list[Shipyard], sig: signal.Signals
) -> None:
    sha = seed(upstream, alpha=agent_manifest("alpha", detach=True))
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS).start()
    shipyards.append(shipyard)
    before = shipyard.wait_version(
        "alpha", "production", shipyard.wait_desired("alpha", "production", sha)
    )
    pids = wait_for(lambda: recorded_pids(shipyard, sha, "alpha", "production"), what="pids")
    assert len(pids) == 3
    assert all(alive(pid) for pid in pids)
    rollouts = shipyard.rollouts("alpha", "production")
    assert [r.result for r in rollouts] == [RolloutResult.HEALTHY]

    process = shipyard.process
    assert process is not None
    process.send_signal(sig)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"shipyard did not stop on {sig.name}:\n{dump(shipyard)}") from None
    shipyard.process = None
    assert code == 0, shipyard.log.read_text()[-3000:]
    left = [pid for pid in pids if alive(pid)]
    assert not left, f"agent processes {left} outlived the controller"

    again = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS)
    again.port = shipyard.port
    shipyards.append(again.start())
    assert again.wait_version("alpha", "production", before["version"]) == before
    assert again.rollouts("alpha", "production") == rollouts  # restored, not rolled out again


def test_detached_children_of_a_preview_do_not_hold_up_production(
    upstream: Upstream, tmp_path: Path, shipyards: list[Shipyard]
) -> None:
    seed(upstream, alpha=agent_manifest("alpha"))
    feature = upstream.commit(
        {"agents/alpha.yaml": agent_manifest("alpha", detach=True, temperature=0.5)},
        branch="feature",
    )
    upstream.push("feature")
    preview = preview_of("feature")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS).start()
    shipyards.append(shipyard)
    shipyard.wait_version("alpha", preview, shipyard.wait_desired("alpha", preview, feature))
    children = wait_for(lambda: recorded_pids(shipyard, feature, "alpha", preview), what="pids")
    assert len(children) == 3

    # Deleting the branch tears the preview down in the sync loop; production's new commit
    # must still go live, and nothing of the preview's process tree may remain.
    upstream.git("checkout", "--quiet", "main")
    upstream.push(":feature")
    main = upstream.commit({"agents/alpha.yaml": agent_manifest("alpha", temperature=0.9)})
    upstream.push("main")
    version = shipyard.wait_desired("alpha", "production", main)
    shipyard.wait_version("alpha", "production", version)
    wait_for(lambda: preview not in shipyard.environments(), what="the preview to go")
    wait_for(lambda: not any(alive(pid) for pid in children), what="the preview's tree to end")


def test_crash_looping_agent_is_restarted_and_reported_until_it_serves_again(
    upstream: Upstream, tmp_path: Path, shipyards: list[Shipyard]
) -> None:
    sha = seed(upstream, alpha=agent_manifest("alpha"), beta=agent_manifest("beta"))
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS).start()
    shipyards.append(shipyard)
    version = shipyard.wait_desired("alpha", "production", sha)
    shipyard.wait_version("alpha", "production", version)
    status = agent_status(shipyard, "alpha", "production")
    assert status is not None
    assert status["ready"]
    assert status["restarts"] == 0

    # SIGKILLed five times in a row: each time it comes back.
    def runs(count: int) -> list[int] | None:
        pids = recorded_pids(shipyard, sha, "alpha", "production")
        return pids if len(pids) == count else None

    for kill in range(1, 6):
        os.kill(wait_for(lambda: runs(kill), what=f"run {kill}")[-1], signal.SIGKILL)  # noqa: B023
    wait_for(lambda: len(recorded_pids(shipyard, sha, "alpha", "production")) == 6, what="run 6")
    shipyard.wait_version("alpha", "production", version)

    # Then it cannot start any more: the API must say so, not "Healthy".
    (shipyard.state / "checkouts" / sha / "alpha--production.crash").touch()
    os.kill(recorded_pids(shipyard, sha, "alpha", "production")[-1], signal.SIGKILL)

    def crash_looping() -> dict[str, Any] | None:
        found = agent_status(shipyard, "alpha", "production")
        return (
            found
            if found and found["state"] == "CrashLoopBackOff" and found["restarts"] >= 8
            else None
        )

    looping = wait_for(crash_looping, what="CrashLoopBackOff")
    assert looping["ready"] is False
    assert looping["version"] == version  # the promoted version stays; nothing rolls back
    assert looping["lastExit"] == "exited with code 3"
    assert "back-off" in looping["message"]
    assert shipyard.agent("alpha", "production").status_code == 502

    def listed_as_crash_looping() -> bool:
        listed = shipyard.http.get(shipyard.api("/api/v1/agents")).json()["items"]
        alpha = [a for a in listed if a["name"] == "alpha"]
        return [(a["state"], a["ready"]) for a in alpha] == [("CrashLoopBackOff", False)]

    wait_for(listed_as_crash_looping, what="/api/v1/agents to say CrashLoopBackOff")

    # A commit that changes another agent reconciles production; the crashing, promoted
    # version is neither rolled back nor rolled out again, and the environment converges.
    other = upstream.commit({"agents/beta.yaml": agent_manifest("beta", temperature=0.7)})
    upstream.push("main")
    shipyard.wait_version("beta", "production", shipyard.wait_desired("beta", "production", other))

    def production_while_looping() -> dict[str, Any] | None:
        production = shipyard.environments()["production"]
        alpha = next(a for a in production["agents"] if a["name"] == "alpha")
        return production if alpha["state"] == "CrashLoopBackOff" else None

    production = wait_for(production_while_looping, what="still CrashLoopBackOff")
    assert next(a for a in production["agents"] if a["name"] == "alpha")["version"] == version
    ready = {c["type"]: c for c in production["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "AgentsNotServing"), production
    assert ready["message"] == "alpha is CrashLoopBackOff"

    # Fixed: the next restart serves, and the status reads ready again.
    (shipyard.state / "checkouts" / sha / "alpha--production.crash").unlink()

    def ready_again() -> dict[str, Any] | None:
        found = agent_status(shipyard, "alpha", "production")
        return found if found and found["ready"] and found["state"] == "Healthy" else None

    wait_for(ready_again, what="ready again")
    production = shipyard.environments()["production"]
    assert {c["type"]: c["status"] for c in production["conditions"]}["Ready"] == "True"
    shipyard.wait_version("alpha", "production", version)
    rollouts = shipyard.rollouts("alpha", "production")
    assert [r.result for r in rollouts] == [RolloutResult.HEALTHY]  # no rollback, no redeploy
    assert [r.commit for r in rollouts] == [sha]


def test_a_promoted_version_that_crashes_after_a_restart_keeps_its_place_and_is_reported(
    upstream: Upstream, tmp_path: Path, shipyards: list[Shipyard]
) -> None:
    sha = seed(upstream, alpha=agent_manifest("alpha"))
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS).start()
    shipyards.append(shipyard)
    version = shipyard.wait_desired("alpha", "production", sha)
    shipyard.wait_version("alpha", "production", version)
    rollouts = shipyard.rollouts("alpha", "production")
    shipyard.stop()

    # While the controller is down, something the agent needs breaks: it now exits at once.
    crash = shipyard.state / "checkouts" / sha / "alpha--production.crash"
    crash.touch()
    again = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS)
    shipyards.append(again.start())

    def crash_looping() -> dict[str, Any] | None:
        found = agent_status(again, "alpha", "production")
        return found if found and found["state"] == "CrashLoopBackOff" else None

    looping = wait_for(crash_looping, what="CrashLoopBackOff after the restart")
    assert looping["version"] == version
    assert looping["ready"] is False
    crash.unlink()
    again.wait_version("alpha", "production", version)
    wait_for(lambda: (a := agent_status(again, "alpha", "production")) and a["ready"], what="ready")
    # Restarted, not rolled out again nor marked failed.
    assert again.rollouts("alpha", "production") == rollouts


def test_sigterm_mid_rollout_abandons_it_cleanly_and_the_next_start_finishes_that_record(
    upstream: Upstream, tmp_path: Path, shipyards: list[Shipyard]
) -> None:
    seed(upstream, alpha=agent_manifest("alpha"))
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS).start()
    shipyards.append(shipyard)
    before = shipyard.serving("alpha", "production")
    assert before is not None
    hold = tmp_path / "hold"
    hold.touch()
    sha = upstream.commit({"agents/alpha.yaml": agent_manifest("alpha", hold=hold)})
    upstream.push("main")

    def in_flight() -> list[Any]:
        return [r for r in shipyard.rollouts("alpha", "production") if r.commit == sha]

    (started,) = wait_for(in_flight, what="the rollout to start")
    assert started.result is RolloutResult.PROGRESSING
    process = shipyard.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, shipyard.log.read_text()[-3000:]
    shipyard.process = None
    assert "abandoning it" in shipyard.log.read_text()
    # Consistent: the record is still open, and nothing claims the new version serves.
    assert in_flight() == [started]
    assert "alpha" not in agent_names_deployed(shipyard, sha)

    hold.unlink()
    again = Shipyard(upstream.bare, tmp_path / "state", *FAST_RESTARTS)
    shipyards.append(again.start())
    again.wait_version("alpha", "production", again.wait_desired("alpha", "production", sha))

    def finished() -> list[Any] | None:
        done = [r for r in again.rollouts("alpha", "production") if r.commit == sha]
        return done if done and done[0].result is RolloutResult.HEALTHY else None

    (record,) = wait_for(finished, what="the same record to finish")
    assert record.id == started.id


def agent_names_deployed(shipyard: Shipyard, sha: str) -> set[str]:
    store = Store(shipyard.state / "shipyard.db")
    try:
        return {record.agent for record in store.deployed("production") if record.commit == sha}
    finally:
        store.close()
