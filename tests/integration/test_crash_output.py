"""Crash output: what an agent printed before it died outlives its process.

An agent that prints `boom: missing MODEL_KEY` to stderr and exits must leave that line
where a person looks: `shipyard logs --previous`, describe's Last State, and the
RolloutFailed event. Real agent processes, a real `shipyard serve`, the real CLI.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.targets.local import terminations
from controller.targets.local.processes import AgentProcess, ProcessState, ProcessTable
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, seed, wait_for
from tests.integration.test_local_processes import FAST_RESTARTS, make_spec

SHIPYARD = Path(sys.executable).parent / "shipyard"

CRASHING_AGENT = """\
import sys
print("loading model settings")
print("boom: missing MODEL_KEY", file=sys.stderr)
sys.exit(3)
"""

# 200 KiB of numbered lines, then a last word: far more than an instance keeps.
CHATTY_AGENT = """\
import sys
for number in range(4000):
    print(f"line {number:05d} " + "x" * 40)
print("the end", file=sys.stderr)
sys.exit(1)
"""


def state_of(process: AgentProcess) -> ProcessState:
    return process.state


async def crash_loop(
    tmp_path: Path, source: str, crashes: int = 3
) -> tuple[ProcessTable, AgentProcess]:
    """Run `source` until it crashed `crashes` times in a row (it is restarted for ever)."""
    (tmp_path / "agent.py").write_text(source)
    table = ProcessTable(restart_policy=FAST_RESTARTS)
    process = await table.launch(make_spec(tmp_path, (sys.executable, "agent.py")))

    async def crashed_enough() -> None:
        while len(table.terminations.of_version(*process.key)) < crashes:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(crashed_enough(), 30.0)
    assert state_of(process) in {ProcessState.CRASH_LOOP_BACK_OFF, ProcessState.STARTING}
    return table, process


def test_every_crashed_instance_keeps_its_exit_code_and_last_output(tmp_path: Path) -> None:
    async def scenario() -> None:
        table, process = await crash_loop(tmp_path, CRASHING_AGENT)
        await table.stop(process.key)
        # Every crash is a record of its own; a stop that caught a restart mid-run adds one.
        ended = [e for e in table.terminations.of_version(*process.key) if e.reason == "Error"]
        assert len(ended) >= 3
        for instance in ended:
            assert instance.reason == "Error"
            assert instance.exit_code == 3
            assert instance.signal is None
            assert instance.message == "exited with code 3"
            assert instance.started_at <= instance.finished_at
            agent_lines = [line.line for line in instance.output if line.stream != "shipyard"]
            assert agent_lines == ["loading model settings", "boom: missing MODEL_KEY"]
            assert instance.last_line == "boom: missing MODEL_KEY"
        # Each record holds its own instance's output, not its predecessors'.
        assert [line.line for line in ended[1].output].count("boom: missing MODEL_KEY") == 1
        last = table.terminations.last(*process.key)
        assert last is not None
        assert last == ended[-1] or last.reason == "Stopped"

    asyncio.run(scenario())


def test_output_is_capped_to_the_newest_64_kib_of_an_instance(tmp_path: Path) -> None:
    async def scenario() -> None:
        table, process = await crash_loop(tmp_path, CHATTY_AGENT)
        await table.stop(process.key)
        instance = next(
            e for e in table.terminations.of_version(*process.key) if e.reason == "Error"
        )
        size = sum(len(line.line.encode()) + 1 for line in instance.output)
        assert size <= terminations.OUTPUT_LIMIT
        assert size > terminations.OUTPUT_LIMIT - 100  # filled up to the cap
        assert instance.truncated
        assert instance.output[-1].line == "the end"
        assert instance.output[-2].line.startswith("line 03999 ")
        assert instance.last_line == "the end"

    asyncio.run(scenario())


def test_a_killed_instance_names_the_signal_and_a_stop_says_stopped(tmp_path: Path) -> None:
    async def scenario() -> None:
        table = ProcessTable(restart_policy=FAST_RESTARTS)
        process = await table.launch(make_spec(tmp_path))
        assert await process.wait_healthy(10.0)
        pid = process.pid
        assert pid is not None
        subprocess.run(["kill", "-KILL", str(pid)], check=True)
        wait_key = process.key

        async def killed_recorded() -> None:
            while not table.terminations.of_version(*wait_key):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(killed_recorded(), 10.0)
        killed = table.terminations.of_version(*wait_key)[0]
        assert (killed.reason, killed.exit_code, killed.signal) == ("Error", None, "SIGKILL")
        assert killed.message == "killed by SIGKILL"
        assert await process.wait_healthy(10.0)  # restarted
        await table.stop(process.key)
        stopped = table.terminations.of_version(*wait_key)[-1]
        assert stopped.reason == "Stopped"
        assert any("listening on" in line.line for line in stopped.output)
        # A healthy instance stopped on purpose is routine: describe's Last State passes
        # over it to the crash before it, `logs --previous` does not.
        assert stopped.routine
        assert not killed.routine
        assert table.terminations.last(*wait_key) == stopped
        assert table.terminations.last(*wait_key, routine=False) == killed

    asyncio.run(scenario())


def test_records_are_bounded_per_version_and_in_total() -> None:
    kept = terminations.Terminations(instances_per_version=2, versions_kept=3)
    for version in ("v1", "v2", "v3", "v4"):
        for run in range(3):
            kept.record(terminations.capture(("a", "prod", version), run, 0.0, (), stopped=False))
    assert kept.of_version("a", "prod", "v1") == []  # the oldest version fell off
    assert [t.exit_code for t in kept.of_version("a", "prod", "v4")] == [1, 2]
    assert kept.last("a", "prod", "v3") is not None
    assert kept.last("b", "prod") is None


# Through `shipyard serve` and the CLI -------------------------------------------------------


def shipyard_cli(shipyard: Shipyard, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHIPYARD), *arguments, "--server", shipyard.api("")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def crashed(tmp_path: Path) -> Any:
    """`bot` serves v1 in production; a push makes v2 that crashes and is rolled back."""
    upstream = Upstream(tmp_path / "git")
    sha = seed(upstream, "bot")
    shipyard = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        first = shipyard.wait_desired("bot", "production", sha)
        shipyard.wait_version("bot", "production", first)
        upstream.commit(
            {
                "agent/crash.py": CRASHING_AGENT,
                "agents/bot.yaml": manifest(
                    "bot", command='["python3", "agent/crash.py"]', deadline=5
                ),
            },
            message="Break bot",
            branch="main",
        )
        upstream.push("main")
        yield shipyard, first
    finally:
        shipyard.close()


def test_logs_previous_describe_and_the_event_show_the_crash(crashed: Any) -> None:
    shipyard, first = crashed

    def failed_event() -> dict[str, Any] | None:
        events = shipyard.http.get(shipyard.api("/api/v1/events?agent=bot")).json()["items"]
        return next((e for e in events if e["reason"] == "RolloutFailed"), None)

    event = wait_for(failed_event, what="the RolloutFailed event")
    assert "last output: boom: missing MODEL_KEY" in event["message"]
    assert f"rolled back: {first} keeps serving" in event["message"]

    previous = shipyard_cli(shipyard, "logs", "bot", "-e", "production", "--previous")
    assert previous.returncode == 0, previous.stderr
    assert previous.stdout.splitlines()[-2:] == [
        "loading model settings",
        "boom: missing MODEL_KEY",
    ]
    current = shipyard_cli(shipyard, "logs", "bot", "-e", "production")
    assert "boom" not in current.stdout  # v1 still serves, its own output

    described = shipyard_cli(shipyard, "describe", "agent", "bot", "-e", "production")
    assert described.returncode == 0, described.stderr
    block = described.stdout.split("Last State:")[1].split("Events:")[0]
    assert block.lstrip().startswith("Terminated\n")
    fields: dict[str, str] = {}
    for line in block.splitlines()[1:]:
        if ":" in line and not line.startswith("    "):
            label, value = line.split(":", 1)
            fields[label.strip()] = value.strip()
    assert fields["Reason"] == "Error"
    assert fields["Exit Code"] == "3"
    assert fields["Version"] != first
    assert fields["Finished"].endswith("+0000")
    assert block.rstrip().endswith("boom: missing MODEL_KEY")


def test_previous_without_an_ended_instance_is_a_clear_error(tmp_path: Path) -> None:
    upstream = Upstream(tmp_path / "git")
    sha = seed(upstream, "bot")
    shipyard = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        version = shipyard.wait_desired("bot", "production", sha)
        shipyard.wait_version("bot", "production", version)
        result = shipyard_cli(shipyard, "logs", "bot", "-e", "production", "--previous")
        assert result.returncode == 1
        assert "no ended instance of bot in production" in result.stderr
        assert "Traceback" not in result.stderr
        both = shipyard_cli(shipyard, "logs", "bot", "-e", "production", "-p", "-f")
        assert both.returncode == 2
        assert "cannot be followed" in both.stderr
    finally:
        shipyard.close()
