"""Agent versions as supervised local processes: the local target's small kubelet.

Running an agent version locally needs what a kubelet gives a Pod, in miniature: start
the command with a clean environment on a loopback port of its own, tell when it is
ready, notice when it stops answering, restart it when it crashes (for ever, backing off
as kubelet's CrashLoopBackOff does), keep its recent output for `logs`, and stop it, its
whole process tree included (see `containment`), on request or when the controller dies.
This module does that with asyncio and plain processes; callers (the local target's apply
step) pass a `LaunchSpec` built from an agent spec, since this bottom layer may not import
the specs themselves.

Output is read from pipes this module owns, never through asyncio's subprocess pipes:
asyncio's `wait()` only returns once every pipe is closed, so an orphan that kept the
agent's stdout would block it for ever. Here the exit is watched on its own, and reading
output after an exit gives up after a short drain.

Nothing here raises because an agent is broken: a command that cannot run, crashes or
never turns healthy shows up as a state and a `last_error`, for the reconciler to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from controller.targets.local import health_probe, terminations
from controller.targets.local.containment import CgroupHome, ProcessTree
from controller.targets.local.launcher import PARENT_PID_ENV, STATUS_FD_ENV, launcher_argv
from controller.targets.local.logbuffer import DEFAULT_CAPACITY, LogBuffer
from controller.targets.local.pipe_reading import PipeReader

_log = logging.getLogger(__name__)

ProcessKey = tuple[str, str, str]
"""(agent, environment, version): at most one process per key."""

# Only these reach an agent from the controller's environment. Everything else, secrets
# the controller itself holds included, must be named in the spec to be seen by an agent.
_INHERITED = ("PATH", "HOME", "LANG")

# While a fresh process is not yet healthy, probe at least this often: a manifest's period
# (seconds, default 2) is about steady-state load, and waiting it out would add up to a
# whole period to every rollout and preview for nothing. The first probes come sooner
# still, doubling from `_FIRST_STARTUP_PROBE` up to that: an agent that is up in 100 ms
# is seen in ~100 ms, not at the next quarter second, and one that takes seconds costs
# only a few more probes (a refused connection each).
_STARTUP_PROBE_INTERVAL = 0.25
_FIRST_STARTUP_PROBE = 0.025

_READ_CHUNK = 64 * 1024
_MAX_LINE = 16 * 1024
_PUMP_DRAIN_SECONDS = 2.0
_REAP_SECONDS = 10.0  # after the tree was killed: only a process stuck in the kernel lasts
_PORT_ATTEMPTS = 20


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to run one version of one agent in one environment.

    `env` holds the manifest's variables and resolved secret values; it is left out of
    `repr` and never logged. Shipyard adds `PORT` and `SHIPYARD_AGENT`, `_ENVIRONMENT`,
    `_VERSION`, `_COMMIT` itself, overriding any the caller passed.
    """

    agent: str
    environment: str
    version: str
    commit: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(repr=False, hash=False)
    health_path: str = "/healthz"
    health_period: float = 2.0
    health_timeout: float = 1.0
    failure_threshold: int = 3
    initial_delay: float = 0.0

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("command must not be empty")
        if not self.cwd.is_absolute():
            raise ValueError(f"cwd must be absolute, got {str(self.cwd)!r}")
        if not self.health_path.startswith("/"):
            raise ValueError(f"health_path must start with '/', got {self.health_path!r}")
        if self.health_period <= 0 or self.health_timeout <= 0 or self.initial_delay < 0:
            raise ValueError("health_period and health_timeout must be > 0, initial_delay >= 0")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        for name, value in self.env.items():
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"invalid environment variable name {name!r}")
            if "\0" in value:
                # Name the variable, never the value: it may be a secret.
                raise ValueError(f"environment variable {name} contains a NUL character")
        # Copies, so a caller mutating its own list or dict cannot change a running spec.
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    @property
    def key(self) -> ProcessKey:
        return (self.agent, self.environment, self.version)


@dataclass(frozen=True)
class RestartPolicy:
    """How crashed processes come back: for ever, after a capped, doubling delay.

    kubelet's CrashLoopBackOff numbers: 10 s after the first crash, doubling up to five
    minutes; a run that lasted `reset_after` seconds (ten minutes) starts the count again.
    """

    initial_backoff: float = 10.0
    max_backoff: float = 300.0
    reset_after: float = 600.0

    def __post_init__(self) -> None:
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")
        if self.reset_after <= 0:
            raise ValueError("reset_after must be > 0")

    def backoff(self, crashes: int) -> float:
        """Seconds to wait after the `crashes`-th crash in a row (counting from 1)."""
        exponent = min(max(crashes - 1, 0), 62)  # big enough to hit the cap, no overflow
        return float(min(self.initial_backoff * 2**exponent, self.max_backoff))


class ProcessState(enum.StrEnum):
    STARTING = "Starting"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"  # crashed; waiting out the delay to restart
    FAILED = "Failed"  # cannot run at all (no such command, no port): nothing to retry
    STOPPED = "Stopped"


def pick_free_port() -> int:
    """A loopback port nobody listens on right now (the agent binds it a moment later)."""
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", 0))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            port: int = probe.getsockname()[1]
            return port
    raise OSError(errno.EADDRINUSE, "no free loopback port")


class AgentProcess:
    """One supervised instance of one agent version, on its own loopback port.

    `start()` runs the command and returns once it runs (or is known not to); a
    background task then probes health, captures output and restarts crashes until
    `stop()`. States: STARTING until the first successful probe, HEALTHY, UNHEALTHY after
    `failure_threshold` failed probes in a row (HEALTHY again on success),
    CRASH_LOOP_BACK_OFF between a crash and the next start, FAILED (terminal, see
    `last_error`) when it cannot run at all, STOPPED (terminal) after `stop()`.
    """

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        restart_policy: RestartPolicy | None = None,
        log_capacity: int = DEFAULT_CAPACITY,
        cgroups: CgroupHome | None = None,
        on_exit: Callable[[terminations.Termination], None] | None = None,
    ) -> None:
        self.spec = spec
        self.on_exit = on_exit  # told how every instance ended, with its last output
        self.restart_policy = restart_policy or RestartPolicy()
        self.logs = LogBuffer(log_capacity)
        self.tree = ProcessTree("-".join(spec.key), cgroups)
        self._port = 0
        self._state = ProcessState.STARTING
        self._state_changed = asyncio.Event()
        self._restarts = 0
        self._crash_streak = 0  # crashes in a row, as counted for the backoff
        self._last_error: str | None = None
        self._last_exit: str | None = None
        self._backoff_until: float | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._started = False
        self._stop_requested = asyncio.Event()
        self._grace = 5.0
        self._outputs: list[int] = []  # read ends of the current run's stdout and stderr

    def __repr__(self) -> str:
        agent, environment, version = self.spec.key
        return (
            f"<AgentProcess {agent}/{environment}/{version} {self._state} "
            f"port={self._port} pid={self.pid} restarts={self._restarts}>"
        )

    @property
    def key(self) -> ProcessKey:
        return self.spec.key

    @property
    def port(self) -> int:
        """The loopback port the agent listens on; the same across restarts (0 before start)."""
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/"

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def pid(self) -> int | None:
        """The running agent's pid, or None between runs and once stopped or failed."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def restarts(self) -> int:
        """How many times a crashed process was started again, over this object's life."""
        return self._restarts

    @property
    def last_error(self) -> str | None:
        """Why the process last crashed, failed or turned unhealthy; None if it never did."""
        return self._last_error

    @property
    def last_exit(self) -> str | None:
        """How the last run ended ("exited with code 3", "killed by SIGKILL"), if one did."""
        return self._last_exit

    @property
    def crash_streak(self) -> int:
        """Crashes in a row; a run of `restart_policy.reset_after` seconds resets it."""
        return self._crash_streak

    @property
    def backoff_until(self) -> float | None:
        """In CrashLoopBackOff: when (`time.time()`) the next start is due; else None."""
        return self._backoff_until if self._state is ProcessState.CRASH_LOOP_BACK_OFF else None

    async def start(self) -> None:
        """Run the command; returns once it runs or has FAILED. Never raises for the agent."""
        if self._state is ProcessState.STOPPED:
            raise RuntimeError("a stopped AgentProcess cannot start again; launch a new one")
        if self._started:
            return
        self._started = True
        try:
            self._port = pick_free_port()
        except OSError as exc:
            self._fail(f"no free loopback port: {exc}")
            return
        process = await self._spawn()
        if process is None:
            return
        if self._stop_requested.is_set():
            # stop() ran while we were spawning and found nothing to stop.
            self._close_outputs()
            await self.tree.end(0)
            await _reap(process)
            self.tree.run_ended()
            return
        self._supervisor = asyncio.create_task(
            self._supervise(process), name=f"shipyard-supervise-{'/'.join(self.key)}"
        )

    async def wait_healthy(
        self, deadline_seconds: float, *, give_up_on_crash: bool = False
    ) -> bool:
        """True once a health probe succeeds; False on deadline, FAILED or STOPPED.

        With `give_up_on_crash` (a rollout's health gate), a crash is a verdict too: a new
        version that exits before it turns healthy fails without waiting out its restarts.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_seconds
        gone = (ProcessState.FAILED, ProcessState.STOPPED)
        while True:
            if self._state is ProcessState.HEALTHY:
                return True
            if self._state in gone:
                return False
            if give_up_on_crash and self._state is ProcessState.CRASH_LOOP_BACK_OFF:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            changed = self._state_changed
            # On timeout, the next pass looks at the state once more, then gives up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole process tree, SIGKILL what is left after `grace`. Idempotent.

        Bounded: returns within `grace` plus a few seconds whatever the agent's children do.
        """
        if self._state is ProcessState.STOPPED:
            return
        self._grace = grace
        self._stop_requested.set()
        if self._supervisor is not None:
            # Shielded: a caller giving up on waiting must not leave the agent half-stopped.
            await asyncio.shield(self._supervisor)
        elif self.tree.members():
            # Never started, or FAILED: normally empty, but an exec failure may have left
            # something the command forked before it gave up.
            await self.tree.end(grace)
        self._stopped()

    def _stopped(self) -> None:
        if self._state is ProcessState.STOPPED:  # a concurrent stop() got here first
            return
        self.tree.close()
        self._set_state(ProcessState.STOPPED)
        self.logs.append("shipyard", "stopped")
        self.logs.close()

    # -- running one process -------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.setdefault("PATH", os.defpath)
        env.setdefault("LANG", "C.UTF-8")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.spec.env)
        env.update(
            PORT=str(self._port),
            SHIPYARD_AGENT=self.spec.agent,
            SHIPYARD_ENVIRONMENT=self.spec.environment,
            SHIPYARD_VERSION=self.spec.version,
            SHIPYARD_COMMIT=self.spec.commit,
        )
        return env

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        """Start one run of the command; None (and FAILED) if it cannot run at all."""
        status_read, status_write = os.pipe()
        status = PipeReader(status_read)
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        self._outputs = [stdout_read, stderr_read]
        env = self._environment()
        env.update(self.tree.launch_env())
        env[STATUS_FD_ENV] = str(status_write)
        env[PARENT_PID_ENV] = str(os.getpid())
        process: asyncio.subprocess.Process | None = None
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *launcher_argv(self.spec.command),
                    cwd=self.spec.cwd,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout_write,
                    stderr=stderr_write,
                    start_new_session=True,  # own session and process group
                    pass_fds=(status_write,),
                )
            finally:
                # Or the pipes never reach EOF: only the agent's side may hold them.
                for fd in (status_write, stdout_write, stderr_write):
                    os.close(fd)
            self.tree.adopt(process.pid, self._outputs)
            exec_error = await status.read_to_end()
            self.tree.launched()
        except (OSError, ValueError) as exc:
            # Reached only before the child runs (e.g. cwd missing); the message carries
            # the OS error, never the environment.
            self._close_outputs()
            self._fail(f"cannot start {self.spec.command[0]!r} in {self.spec.cwd}: {exc}")
            return None
        except BaseException:
            if process is not None:
                self.tree.kill_now()
            self._close_outputs()
            raise
        finally:
            status.close()
        if exec_error:
            await _reap(process)
            self.tree.run_ended()
            self._close_outputs()
            self._fail(exec_error.decode("utf-8", "replace"))
            return None
        self._process = process
        _log.info("%s started, pid %d, port %d", "/".join(self.key), process.pid, self._port)
        return process

    def _close_outputs(self) -> None:
        for fd in self._outputs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._outputs = []

    async def _supervise(self, first: asyncio.subprocess.Process) -> None:
        process: asyncio.subprocess.Process | None = first
        try:
            while process is not None:
                started = time.monotonic()
                returncode = await self._run(process)
                if self._stop_requested.is_set():
                    return
                delay = self._crashed(returncode, time.monotonic() - started)
                self._backoff_until = time.time() + delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                if self._stop_requested.is_set():
                    return
                self._restarts += 1
                self.logs.append("shipyard", f"restarting (restart {self._restarts})")
                self._set_state(ProcessState.STARTING)
                process = await self._spawn()
                if process is not None and self._stop_requested.is_set():
                    self._close_outputs()
                    await self.tree.end(self._grace)
                    await _reap(process)
                    self.tree.run_ended()
                    return
        except Exception as exc:
            # A bug here must not leave an agent running with nobody watching it.
            _log.exception("supervisor of %s crashed", "/".join(self.key))
            self.tree.kill_now()
            self._fail(f"supervisor error: {exc!r}")
        finally:
            # Also reached when the event loop shuts down and cancels us.
            self._close_outputs()
            if self._process is not None and self._process.returncode is None:
                self.tree.kill_now()

    async def _run(self, process: asyncio.subprocess.Process) -> int:
        """Watch one run until it exits or a stop is requested; returns its exit code."""
        self._set_state(ProcessState.STARTING)
        pipes = [PipeReader(fd) for fd in self._outputs]
        self._outputs = []  # the readers own them now
        started_at = time.time()
        pumps = [
            asyncio.create_task(self._pump(pipe, name))
            for pipe, name in zip(pipes, ("stdout", "stderr"), strict=True)
        ]
        prober = asyncio.create_task(self._probe_loop())
        exited = asyncio.create_task(process.wait())
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            prober.cancel()
            if not exited.done():
                ending = await self.tree.end(self._grace)
                if ending == "killed":
                    self.logs.append(
                        "shipyard", f"did not exit within {self._grace:g}s of SIGTERM; killed"
                    )
            else:
                # Whatever the agent started dies with it, detached or not: it would hold
                # the port and the pipes.
                await self.tree.end(0)
            returncode = await _reap(process)
            self.tree.run_ended()
            _, still_reading = await asyncio.wait(pumps, timeout=_PUMP_DRAIN_SECONDS)
            for pump in still_reading:
                pump.cancel()
        finally:
            for task in (prober, exited, stop, *pumps):
                task.cancel()
            await asyncio.gather(prober, *pumps, return_exceptions=True)
            for pipe in pipes:
                pipe.close()  # the one close of each, once no pump reads it
        if self.on_exit is not None:
            stopped = self._stop_requested.is_set()
            healthy = self._state is ProcessState.HEALTHY
            lines = self.logs.lines(started_at)
            self.on_exit(
                terminations.capture(
                    self.key, returncode, started_at, lines, stopped=stopped, healthy=healthy
                )
            )
        return returncode

    def _crashed(self, returncode: int, ran_for: float) -> float:
        """Record a crash; returns the seconds to wait before the next start."""
        policy = self.restart_policy
        if ran_for >= policy.reset_after:
            self._crash_streak = 0
        self._crash_streak += 1
        reason = _describe_exit(returncode)
        self._last_exit = self._last_error = reason
        delay = policy.backoff(self._crash_streak)
        self.logs.append("shipyard", f"{reason}; restarting in {delay:g}s")
        _log.warning("%s %s; restarting in %gs", "/".join(self.key), reason, delay)
        self._set_state(ProcessState.CRASH_LOOP_BACK_OFF)
        return delay

    async def _pump(self, pipe: PipeReader, name: str) -> None:
        # Chunks rather than lines: one overlong line must not kill the reader.
        pending = b""
        while chunk := await pipe.read(_READ_CHUNK):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self.logs.append(name, _decode(raw))
            while len(pending) > _MAX_LINE:
                self.logs.append(name, _decode(pending[:_MAX_LINE]))
                pending = pending[_MAX_LINE:]
        if pending:
            self.logs.append(name, _decode(pending))

    # -- health --------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        spec = self.spec
        failures = 0
        startup_interval = _FIRST_STARTUP_PROBE
        await asyncio.sleep(spec.initial_delay)
        # One kept-alive loopback connection (no proxy from the environment applies):
        # idle probes of many agents would otherwise cost a connection each.
        async with health_probe.HealthProbe(self._port, spec.health_path) as probe:
            while True:
                healthy, detail = await probe.check(spec.health_timeout)
                if healthy:
                    failures = 0
                    if self._state is not ProcessState.HEALTHY:
                        self.logs.append("shipyard", f"healthy on port {self._port}")
                        self._set_state(ProcessState.HEALTHY)
                else:
                    failures += 1
                    if self._state is ProcessState.HEALTHY and failures >= spec.failure_threshold:
                        self._last_error = (
                            f"health check {spec.health_path} failed {failures} times "
                            f"in a row: {detail}"
                        )
                        self.logs.append("shipyard", self._last_error)
                        self._set_state(ProcessState.UNHEALTHY)
                interval = spec.health_period
                if self._state is ProcessState.STARTING:
                    interval = min(interval, startup_interval)
                    startup_interval = min(startup_interval * 2, _STARTUP_PROBE_INTERVAL)
                await asyncio.sleep(interval)

    # -- state ---------------------------------------------------------------------------

    def _set_state(self, state: ProcessState) -> None:
        # STOPPED is final; FAILED can only become STOPPED.
        if state is self._state or self._state is ProcessState.STOPPED:
            return
        if self._state is ProcessState.FAILED and state is not ProcessState.STOPPED:
            return
        self._state = state
        # A fresh Event per change: every waiter wakes, and nobody has to clear it.
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    def _fail(self, message: str) -> None:
        self._last_error = message
        self.logs.append("shipyard", message)
        _log.warning("%s failed: %s", "/".join(self.key), message)
        self._set_state(ProcessState.FAILED)
        self.logs.close()


class ProcessTable:
    """Every agent process the local target runs, keyed by (agent, environment, version).

    FAILED processes stay in the table, so their errors can be shown, until stopped.
    With `use_cgroups` (the default), each agent gets a cgroup v2 of its own wherever the
    machine allows; elsewhere its processes are found through /proc alone.
    """

    def __init__(
        self, *, restart_policy: RestartPolicy | None = None, use_cgroups: bool = True
    ) -> None:
        self._restart_policy = restart_policy or RestartPolicy()
        self._processes: dict[ProcessKey, AgentProcess] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # replaced versions on their way out
        self.cgroups = CgroupHome.find() if use_cgroups else None
        self.terminations = terminations.Terminations()

    async def launch(self, spec: LaunchSpec) -> AgentProcess:
        """The process for `spec`, started unless the same spec already runs (idempotent).

        A different spec under the same key (say, a rotated secret) replaces the old one.
        To retry a FAILED process with the same spec, `stop` it first.
        """
        current = self._processes.get(spec.key)
        reusable = current is not None and current.state is not ProcessState.STOPPED
        if current is not None and reusable and current.spec == spec:
            return current
        process = AgentProcess(
            spec,
            restart_policy=self._restart_policy,
            cgroups=self.cgroups,
            on_exit=self.terminations.record,
        )
        # Registered before any await, so a concurrent launch of the same spec finds it.
        self._processes[spec.key] = process
        if current is not None:
            await current.stop()
        await process.start()
        return process

    def get(self, key: ProcessKey) -> AgentProcess | None:
        return self._processes.get(key)

    async def stop(self, key: ProcessKey, grace: float = 5.0) -> None:
        process = self._processes.pop(key, None)
        if process is not None:
            await process.stop(grace)

    def stop_soon(self, key: ProcessKey, grace: float = 5.0) -> None:
        """Out of the table now; the process stops in a task of its own (`stop_all` waits).

        For a version that no longer takes traffic: its SIGTERM, exit and the check that
        nothing of it is left take 0.3-0.8 s here, which a rollout need not wait for.
        """
        process = self._processes.pop(key, None)
        if process is None:
            return
        task = asyncio.ensure_future(process.stop(grace))
        self._stopping.add(task)
        task.add_done_callback(self._forget_stop)

    def _forget_stop(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("stopping a replaced agent failed", exc_info=task.exception())

    async def stop_all(self, grace: float = 5.0) -> None:
        processes = list(self._processes.values())
        self._processes.clear()
        await asyncio.gather(*(process.stop(grace) for process in processes))
        if self._stopping:  # their failures were logged as they ended
            await asyncio.gather(*list(self._stopping), return_exceptions=True)
        if self.cgroups is not None:
            self.cgroups.close()

    def running(self) -> list[AgentProcess]:
        """Processes that run or will run again: everything but FAILED ones."""
        return [p for p in self._processes.values() if p.state is not ProcessState.FAILED]

    def processes(self) -> list[AgentProcess]:
        """Every process in the table, FAILED ones included."""
        return list(self._processes.values())


async def _reap(process: asyncio.subprocess.Process) -> int:
    """The exit code of a process that was told to die, without waiting for ever."""
    try:
        return await asyncio.wait_for(asyncio.shield(process.wait()), _REAP_SECONDS)
    except TimeoutError:
        _log.warning("pid %d did not exit; leaving it behind", process.pid)
        return process.returncode if process.returncode is not None else -signal.SIGKILL


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def _decode(raw: bytes) -> str:
    return raw.removesuffix(b"\r").decode("utf-8", "replace")
