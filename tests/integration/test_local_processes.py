"""The local target's process supervisor, against real processes and real HTTP on loopback.

These are the behaviours the rest of Shipyard relies on when it runs agents locally:
health turns a version ready, crashes are restarted for ever with capped backoff, a
command that cannot run fails cleanly, stop leaves nothing behind (children that detached
with `setsid` or double-forked included), agents see only the environment meant for them,
and they do not outlive a killed controller.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from controller.cli import event_loop
from controller.targets.local.containment import MARKER_ENV, CgroupHome
from controller.targets.local.launcher import PARENT_PID_ENV, STATUS_FD_ENV, launcher_argv
from controller.targets.local.logbuffer import LogLine
from controller.targets.local.processes import (
    AgentProcess,
    LaunchSpec,
    ProcessState,
    ProcessTable,
    RestartPolicy,
)
from controller.targets.local.target import LocalTarget

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples/agents-repo/agent/server.py"
AGENT_COMMAND = (sys.executable, str(SERVER))
# Short backoffs keep crash-loop tests to a fraction of a second; the defaults (kubelet's)
# wait 10 s after the first crash.
FAST_RESTARTS = RestartPolicy(initial_backoff=0.05, max_backoff=0.2, reset_after=600)

# An agent whose /healthz fails while a file named "sick" exists in its directory.
TOGGLED_HEALTH_AGENT = """
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if os.path.exists("sick") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

# An agent that leaves two children behind it, both holding its stdout and stderr: one
# that left the process group with `setsid`, and a daemon that double-forked into a
# session of its own. It writes their pids to files in its directory, then serves.
DETACHING_AGENT = """
import os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

subprocess.Popen(["setsid", "sh", "-c", "echo $$ > setsid.pid; exec sleep 1000"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("daemon.pid.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("daemon.pid.tmp", "daemon.pid")
        while True:
            print("daemon still here", flush=True)
            time.sleep(0.5)
    os._exit(0)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

# An agent that, told to stop, exits only once a file named "let-go" is in its directory.
LINGERING_AGENT = """
import os, signal, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer

def linger(*_):
    def wait():
        while not os.path.exists("let-go"):
            time.sleep(0.02)
        os._exit(0)
    threading.Thread(target=wait, daemon=True).start()

signal.signal(signal.SIGTERM, linger)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """On the loop `shipyard serve` runs (uvloop where installed); test_pipe_reading has both."""
    return event_loop.run(scenario)


def make_spec(cwd: Path, command: tuple[str, ...] = AGENT_COMMAND, **overrides: Any) -> LaunchSpec:
    values: dict[str, Any] = {
        "agent": "support-bot",
        "environment": "preview-feature-x",
        "version": "v1a2b3c4",
        "commit": "0123456789abcdef",
        "command": command,
        "cwd": cwd,
        "env": {"SHIPYARD_MODEL": "fake/echo-1"},
        "health_period": 0.1,
        "health_timeout": 0.5,
        "failure_threshold": 2,
    }
    values.update(overrides)
    return LaunchSpec(**values)


def is_gone(pid: int) -> bool:
    """True if no such process runs; a zombie nobody has reaped yet counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def state_of(process: AgentProcess) -> ProcessState:
    """The state now; reading it through a call keeps mypy from narrowing across awaits."""
    return process.state


def texts(lines: list[LogLine], stream: str | None = None) -> list[str]:
    return [entry.line for entry in lines if stream is None or entry.stream == stream]


def test_example_agent_turns_healthy_serves_its_identity_and_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        table = ProcessTable()
        spec = make_spec(tmp_path)
        process = await table.launch(spec)
        try:
            assert await process.wait_healthy(5.0)
            assert process.state is ProcessState.HEALTHY
            assert await table.launch(spec) is process  # same spec: idempotent
            assert table.get(spec.key) is process
            assert table.running() == [process]
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.get(f"http://127.0.0.1:{process.port}/")
            assert response.status_code == 200
            body = response.json()
            assert body["agent"] == "support-bot"
            assert body["environment"] == "preview-feature-x"
            assert body["version"] == "v1a2b3c4"
            assert body["commit"] == "0123456789abcdef"
            assert body["model"] == "fake/echo-1"
            await eventually(lambda: "GET / 200 support-bot" in texts(process.logs.lines()))
            stdout = texts(process.logs.lines(), "stdout")
            assert any(f"listening on http://127.0.0.1:{process.port}/" in t for t in stdout)
            pid = process.pid
            assert pid is not None
        finally:
            await table.stop_all()
        assert state_of(process) is ProcessState.STOPPED
        assert process.pid is None
        assert table.running() == []
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        await process.stop()  # idempotent

    run(scenario())


def test_follow_streams_new_lines_until_stopped(tmp_path: Path) -> None:
    async def scenario() -> None:
        process = AgentProcess(make_spec(tmp_path))
        await process.start()
        assert await process.wait_healthy(5.0)
        since = time.time()
        seen: list[LogLine] = []

        async def follow() -> None:
            async for entry in process.logs.follow(since=since):
                seen.append(entry)

        follower = asyncio.create_task(follow())
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(process.url + "hello")
        await eventually(lambda: "GET /hello 404 support-bot" in texts(seen))
        await process.stop()
        await asyncio.wait_for(follower, 2.0)  # the stream ends with the process
        assert texts(seen)[-1] == "stopped"
        assert all(entry.timestamp >= since for entry in seen)

    run(scenario())


def test_command_that_exits_at_once_is_restarted_for_ever_in_crash_loop_back_off(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        command = (sys.executable, "-c", "import sys; print('boom'); sys.exit(3)")
        process = AgentProcess(make_spec(tmp_path, command), restart_policy=FAST_RESTARTS)
        await process.start()
        # A health gate gives up at the first crash; the supervisor does not.
        assert not await process.wait_healthy(8.0, give_up_on_crash=True)
        await eventually(lambda: process.restarts >= 6, timeout=10.0)
        assert process.state is not ProcessState.FAILED
        assert process.crash_streak >= 6
        assert process.last_exit == "exited with code 3"
        await eventually(lambda: process.state is ProcessState.CRASH_LOOP_BACK_OFF)
        assert process.backoff_until is not None
        assert process.pid is None
        assert texts(process.logs.lines(), "stdout")[:6] == ["boom"] * 6
        assert "exited with code 3; restarting in 0.05s" in texts(process.logs.lines())
        assert "exited with code 3; restarting in 0.2s" in texts(process.logs.lines())
        await process.stop()
        assert state_of(process) is ProcessState.STOPPED

    run(scenario())


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("shipyard-no-such-command",), "No such file or directory"),
        (("/nonexistent/bin/agent",), "No such file or directory"),
        (("./not-executable.sh",), "Permission denied"),
    ],
)
def test_command_that_cannot_run_fails_at_once(
    tmp_path: Path, command: tuple[str, ...], message: str
) -> None:
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\nexit 0\n")

    async def scenario() -> None:
        process = AgentProcess(make_spec(tmp_path, command))
        await process.start()  # never raises for a broken agent
        assert process.state is ProcessState.FAILED
        assert process.restarts == 0
        assert process.last_error is not None
        assert message in process.last_error
        assert repr(command[0]) in process.last_error
        assert any(message in t for t in texts(process.logs.lines(), "shipyard"))
        assert not await process.wait_healthy(1.0)

    run(scenario())


def test_missing_working_directory_fails_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        process = AgentProcess(make_spec(tmp_path / "missing"))
        await process.start()
        assert process.state is ProcessState.FAILED
        assert process.last_error is not None
        assert "No such file or directory" in process.last_error

    run(scenario())


def test_exit_code_127_from_the_agent_itself_is_a_crash_not_an_exec_failure(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        command = (sys.executable, "-c", "import sys; sys.exit(127)")
        process = AgentProcess(make_spec(tmp_path, command), restart_policy=FAST_RESTARTS)
        await process.start()
        await eventually(lambda: process.restarts >= 2)
        assert process.state is not ProcessState.FAILED
        assert process.last_error is not None
        assert "exited with code 127" in process.last_error
        await process.stop()

    run(scenario())


def test_process_that_never_answers_is_not_healthy(tmp_path: Path) -> None:
    async def scenario() -> None:
        command = (sys.executable, "-c", "import time; time.sleep(60)")
        process = AgentProcess(make_spec(tmp_path, command))
        await process.start()
        try:
            assert not await process.wait_healthy(1.0)
            assert process.state is ProcessState.STARTING
            assert process.restarts == 0
            pid = process.pid
            assert pid is not None
        finally:
            await process.stop()
        assert is_gone(pid)

    run(scenario())


def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    async def scenario() -> None:
        command = (
            sys.executable,
            "-c",
            "import signal, time; "
            "signal.signal(signal.SIGTERM, lambda *_: print('got SIGTERM', flush=True)); "
            "print('ready', flush=True); time.sleep(60)",
        )
        process = AgentProcess(make_spec(tmp_path, command))
        await process.start()
        await eventually(lambda: "ready" in texts(process.logs.lines()))
        pid = process.pid
        assert pid is not None
        await process.stop(grace=0.3)
        assert is_gone(pid)
        # Asked first (its handler ran and it kept going), killed only then.
        assert "got SIGTERM" in texts(process.logs.lines())
        assert any("killed" in t for t in texts(process.logs.lines(), "shipyard"))

    run(scenario())


def test_a_rollout_is_done_once_traffic_switched_and_the_old_version_stops_after(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        (tmp_path / "agent.py").write_text(LINGERING_AGENT)
        command = (sys.executable, "agent.py")
        target = LocalTarget(ProcessTable())
        try:
            old = make_spec(tmp_path, command, version="v1")
            assert (await target.deploy(old, 30)).healthy
            replaced = target.process(old.environment, old.agent)
            assert replaced is not None
            assert replaced.pid is not None
            new = make_spec(tmp_path, command, version="v2")
            # The old version cannot exit before "let-go" exists: the rollout's result
            # came without waiting for it, and traffic is already on the new version.
            old_pid = replaced.pid
            assert (await target.deploy(new, 30)).healthy
            assert not is_gone(old_pid)
            assert target.running(old.environment) == {old.agent: "v2"}
            (tmp_path / "let-go").touch()
            await eventually(lambda: state_of(replaced) is ProcessState.STOPPED, timeout=30)
            assert is_gone(old_pid)
        finally:
            (tmp_path / "let-go").touch()
            await target.close()

    run(scenario())


def test_killed_healthy_agent_is_restarted_on_the_same_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        process = AgentProcess(make_spec(tmp_path), restart_policy=FAST_RESTARTS)
        await process.start()
        try:
            assert await process.wait_healthy(5.0)
            first_pid, port = process.pid, process.port
            assert first_pid is not None
            os.kill(first_pid, signal.SIGKILL)
            await eventually(lambda: process.restarts == 1)
            assert await process.wait_healthy(5.0)
            assert process.pid not in (None, first_pid)
            assert process.port == port
            assert process.last_error == "killed by SIGKILL"
            # Healthy again resets the crash streak: more kills never reach FAILED.
            for expected_restarts in (2, 3, 4):
                pid = process.pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                await eventually(lambda: process.pid not in (None, pid))  # noqa: B023
                assert process.restarts == expected_restarts
                assert await process.wait_healthy(5.0)
        finally:
            await process.stop()

    run(scenario())


def test_failing_health_turns_unhealthy_and_recovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        command = (sys.executable, "-c", TOGGLED_HEALTH_AGENT)
        process = AgentProcess(make_spec(tmp_path, command))
        await process.start()
        try:
            assert await process.wait_healthy(5.0)
            (tmp_path / "sick").touch()
            await eventually(lambda: process.state is ProcessState.UNHEALTHY)
            assert process.last_error is not None
            assert "failed 2 times in a row: HTTP 503" in process.last_error
            assert process.restarts == 0  # unhealthy is reported, not restarted
            (tmp_path / "sick").unlink()
            assert await process.wait_healthy(5.0)
        finally:
            await process.stop()

    run(scenario())


def test_agent_sees_only_its_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_LEAK", "x")
    command = (
        sys.executable,
        "-c",
        "import json, os, time; print(json.dumps(sorted(os.environ)), flush=True); "
        "print('PORT=' + os.environ['PORT'], flush=True); time.sleep(60)",
    )
    secret = "s3cr3t-value-that-must-not-leak"
    spec = make_spec(
        tmp_path, command, env={"API_TOKEN": secret, "SHIPYARD_MODEL": "fake/echo-1", "PORT": "1"}
    )

    async def scenario() -> list[LogLine]:
        process = AgentProcess(spec)
        await process.start()
        try:
            await eventually(lambda: len(process.logs.lines()) >= 2)
            assert texts(process.logs.lines())[1] == f"PORT={process.port}"  # ours wins
        finally:
            await process.stop()
        return process.logs.lines()

    lines = run(scenario())
    names = set(json.loads(lines[0].line))
    assert "SHIPYARD_TEST_LEAK" not in names
    assert not names & {STATUS_FD_ENV, PARENT_PID_ENV}
    expected = {
        MARKER_ENV,
        "PATH",
        "HOME",
        "LANG",
        "PYTHONUNBUFFERED",
        "PORT",
        "API_TOKEN",
        "SHIPYARD_MODEL",
        "SHIPYARD_AGENT",
        "SHIPYARD_ENVIRONMENT",
        "SHIPYARD_VERSION",
        "SHIPYARD_COMMIT",
    }
    # Python may add LC_CTYPE itself when it coerces a C locale.
    assert expected - {"HOME"} <= names <= expected | {"LC_CTYPE"}
    assert secret not in repr(spec)
    assert not any(secret in entry.line for entry in lines if entry.stream == "shipyard")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_agent_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    parent_script = f"""
import os, subprocess, sys, time
sys.path.insert(0, {str(ROOT)!r})
from controller.targets.local.launcher import launcher_argv
command = [sys.executable, "-c", "import time; time.sleep(60)"]
env = dict(os.environ, {PARENT_PID_ENV}=str(os.getpid()))
child = subprocess.Popen(launcher_argv(command), env=env)
print(child.pid, flush=True)
time.sleep(60)
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        # Wait until the launcher has armed the signal and exec'd the real command.
        deadline = time.monotonic() + 5.0
        while b"time.sleep(60)" not in Path(f"/proc/{child_pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "child never exec'd"
            time.sleep(0.01)
        assert not is_gone(child_pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 2.0
        while not is_gone(child_pid):
            assert time.monotonic() < deadline, "child outlived its SIGKILLed parent"
            time.sleep(0.02)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_launcher_whose_parent_already_died_does_not_run_the_command() -> None:
    # Pid 1 is never this test's pid: the launcher must conclude it was orphaned
    # before it could arm PDEATHSIG, and kill itself instead of running unsupervised.
    env = dict(os.environ, **{PARENT_PID_ENV: "1"})
    result = subprocess.run(
        launcher_argv([sys.executable, "-c", "print('ran')"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == ""


def test_backoff_is_kubelets_ten_seconds_doubling_to_five_minutes() -> None:
    policy = RestartPolicy()
    assert [policy.backoff(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 300, 300, 300]
    assert policy.backoff(10_000) == 300
    assert policy.reset_after == 600
    with pytest.raises(ValueError, match="initial_backoff"):
        RestartPolicy(initial_backoff=5, max_backoff=1)


def test_launch_spec_rejects_relative_cwd_and_hides_env() -> None:
    with pytest.raises(ValueError, match="absolute"):
        make_spec(Path("relative"))
    spec = make_spec(Path("/tmp"), env={"TOKEN": "hidden"})
    assert "hidden" not in repr(spec)
    with pytest.raises(ValueError, match="TOKEN") as error:
        make_spec(Path("/tmp"), env={"TOKEN": "bad\0value"})
    assert "bad" not in str(error.value)


def _containment_modes() -> list[Any]:
    cgroups = CgroupHome.find()
    if cgroups is not None:
        cgroups.close()
    return [
        pytest.param(
            True,
            id="cgroup",
            marks=pytest.mark.skipif(cgroups is None, reason="no writable cgroup v2 here"),
        ),
        pytest.param(False, id="proc-scan"),
    ]


def detached_pids(directory: Path) -> list[int]:
    names = ("setsid.pid", "daemon.pid")
    if not all((directory / name).exists() for name in names):
        return []
    try:
        return [int((directory / name).read_text()) for name in names]
    except ValueError:  # written but not flushed yet
        return []


@pytest.mark.parametrize("use_cgroups", _containment_modes())
def test_stop_ends_children_that_detached_and_hold_the_pipes(
    tmp_path: Path, use_cgroups: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        table = ProcessTable(use_cgroups=use_cgroups)
        spec = make_spec(tmp_path, (sys.executable, "-c", DETACHING_AGENT))
        process = await table.launch(spec)
        assert await process.wait_healthy(10.0)
        await eventually(lambda: len(detached_pids(tmp_path)) == 2)
        await eventually(lambda: "daemon still here" in texts(process.logs.lines(), "stdout"))
        agent_pid = process.pid
        assert agent_pid is not None
        children = detached_pids(tmp_path)
        # Neither child is in the agent's process group any more.
        assert all(os.getpgid(pid) != agent_pid for pid in children)
        if use_cgroups:  # but both were born inside the agent's cgroup
            assert process.tree.cgroup is not None
            procs = (process.tree.cgroup / "cgroup.procs").read_text().split()
            assert {str(pid) for pid in (agent_pid, *children)} <= set(procs)
            assert "did not join" not in caplog.text  # the cgroup is trusted, no fallback
        # Bounded by the grace and the kill wait; before, it waited on the pipes for ever.
        await asyncio.wait_for(table.stop_all(grace=1.0), timeout=30.0)
        assert state_of(process) is ProcessState.STOPPED
        for pid in (agent_pid, *children):
            assert is_gone(pid), f"pid {pid} outlived stop()"

    run(scenario())


@pytest.mark.parametrize("use_cgroups", _containment_modes())
def test_crash_ends_detached_children_and_the_restart_gets_the_port(
    tmp_path: Path, use_cgroups: bool
) -> None:
    async def scenario() -> None:
        table = ProcessTable(restart_policy=FAST_RESTARTS, use_cgroups=use_cgroups)
        process = await table.launch(make_spec(tmp_path, (sys.executable, "-c", DETACHING_AGENT)))
        try:
            assert await process.wait_healthy(10.0)
            await eventually(lambda: len(detached_pids(tmp_path)) == 2)
            first = detached_pids(tmp_path)
            for name in ("setsid.pid", "daemon.pid"):
                (tmp_path / name).unlink()
            pid = process.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: process.restarts == 1, timeout=15.0)
            for old in first:
                await eventually(lambda: is_gone(old), timeout=10.0)  # noqa: B023
            # The daemon no longer holds the port, so the new run can listen on it.
            assert await process.wait_healthy(10.0)
            assert process.last_exit == "killed by SIGKILL"
        finally:
            await table.stop_all(grace=1.0)
        for pid in detached_pids(tmp_path):
            assert is_gone(pid)

    run(scenario())


def test_sigkilled_five_times_it_backs_off_restarts_and_serves_again(tmp_path: Path) -> None:
    policy = RestartPolicy(initial_backoff=0.1, max_backoff=0.4, reset_after=600)

    async def scenario() -> None:
        process = AgentProcess(make_spec(tmp_path), restart_policy=policy)
        await process.start()
        try:
            assert await process.wait_healthy(10.0)
            for kill in range(1, 6):
                pid = process.pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                await eventually(lambda: process.restarts == kill, timeout=15.0)  # noqa: B023
                assert process.crash_streak == kill
                assert await process.wait_healthy(10.0)
            delays = [t for t in texts(process.logs.lines()) if "restarting in" in t]
            assert [d.rsplit(" ", 1)[1] for d in delays] == ["0.1s", "0.2s", "0.4s", "0.4s", "0.4s"]
            assert process.state is ProcessState.HEALTHY
        finally:
            await process.stop()

    run(scenario())


def test_a_run_longer_than_reset_after_starts_the_backoff_again(tmp_path: Path) -> None:
    # The agent lives about a second, then crashes: longer than reset_after, so every
    # crash counts as the first one (kubelet forgets crashes after ten minutes of running).
    command = (sys.executable, "-c", "import time, sys; time.sleep(1.0); sys.exit(4)")
    policy = RestartPolicy(initial_backoff=0.05, max_backoff=10, reset_after=0.5)

    async def scenario() -> None:
        process = AgentProcess(make_spec(tmp_path, command), restart_policy=policy)
        await process.start()
        try:
            await eventually(lambda: process.restarts >= 3, timeout=20.0)
            assert process.crash_streak == 1
            delays = [t for t in texts(process.logs.lines()) if "restarting in" in t]
            assert all(d.endswith("restarting in 0.05s") for d in delays)
        finally:
            await process.stop()

    run(scenario())


@pytest.mark.parametrize("use_cgroups", _containment_modes())
def test_stopping_one_tree_leaves_other_agents_and_the_controllers_children_alone(
    tmp_path: Path, use_cgroups: bool
) -> None:
    # The controller holds the read end of every agent's output pipes, and is the parent
    # of every agent: neither may pull its other children into one agent's tree.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    async def scenario() -> None:
        table = ProcessTable(use_cgroups=use_cgroups)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = await table.launch(
            make_spec(tmp_path / "a", (sys.executable, "-c", DETACHING_AGENT))
        )
        second = await table.launch(make_spec(tmp_path / "b", agent="other-bot"))
        try:
            assert await first.wait_healthy(10.0)
            assert await second.wait_healthy(10.0)
            await eventually(lambda: len(detached_pids(tmp_path / "a")) == 2)
            second_pid = second.pid
            assert second_pid is not None
            assert bystander.pid not in first.tree.members()
            assert second_pid not in first.tree.members()
            await table.stop(first.key, grace=1.0)
            assert all(is_gone(pid) for pid in detached_pids(tmp_path / "a"))
            assert not is_gone(second_pid)
            assert second.state is ProcessState.HEALTHY
            assert bystander.poll() is None
        finally:
            await table.stop_all(grace=1.0)

    try:
        run(scenario())
    finally:
        bystander.kill()
        bystander.wait()


def test_start_sweeps_agent_cgroups_left_by_a_controller_that_is_gone(tmp_path: Path) -> None:
    probe = CgroupHome.find()
    if probe is None:
        pytest.skip("no writable cgroup v2 here")
    probe.close()
    # A controller that was SIGKILLed: its pid is gone, its agent cgroup still holds a
    # detached child that nobody else would ever stop.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = probe.root / f"shipyard-{dead.pid}" / "alpha-production-v1-1"
    stale.mkdir(parents=True)
    orphan = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        (stale / "cgroup.procs").write_text(str(orphan.pid))
        home = CgroupHome.find()
        assert home is not None
        home.close()
        orphan.wait(timeout=10)
        assert orphan.returncode == -signal.SIGKILL
        assert not stale.parent.exists()
    finally:
        orphan.kill()
        orphan.wait()
        for leftover in (stale, stale.parent):
            if leftover.exists():
                leftover.rmdir()
