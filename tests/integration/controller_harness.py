"""A real `shipyard serve` in a subprocess, fed by a real git remote, probed over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from controller.store.records import Rollout
from controller.store.sqlite import Store
from preview import naming
from tests.gitrepos import Upstream

EXAMPLE_AGENT = Path(__file__).resolve().parents[2] / "examples" / "agents-repo" / "agent"
T = TypeVar("T")


def manifest(
    name: str,
    *,
    temperature: float = 0.2,
    command: str = '["python3", "agent/server.py"]',
    deadline: int = 20,
) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  run:
    command: {command}
  model:
    provider: fake
    name: echo
    parameters:
      temperature: {temperature}
  prompt:
    system: You are {name}.
  rollout:
    progressDeadlineSeconds: {deadline}
"""


def seed(upstream: Upstream, *names: str) -> str:
    """A `main` branch with the example agent program and one manifest per name."""
    files: dict[str, str | None] = {
        "agent/server.py": (EXAMPLE_AGENT / "server.py").read_text(),
    }
    files.update({f"agents/{name}.yaml": manifest(name) for name in names})
    sha = upstream.commit(files, message="Add agents", branch="main")
    upstream.push("main")
    return sha


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, KeyError, ValueError) as error:
            last = error
            result = None
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last error {last!r}")


class Shipyard:
    """`shipyard serve` as a user runs it, restartable and killable."""

    def __init__(
        self,
        repo: Path | str,
        state: Path,
        *extra: str,
        poll_interval: str = "0.3s",
        token: str | None = None,
    ) -> None:
        self.repo = repo
        self.state = state
        self.extra = extra
        self.poll_interval = poll_interval
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = state.parent / "controller.log"
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(timeout=10.0, trust_env=False, headers=headers)

    def start(self) -> Shipyard:
        self._launch()
        wait_for(self._ready, what="the controller's first sync")
        return self

    def _launch(self) -> None:
        executable = Path(sys.executable).parent / "shipyard"
        command = [
            str(executable), "serve", *(["--repo", str(self.repo)] if self.repo else []),
            "--state-dir", str(self.state),
            "--port", str(self.port), "--poll-interval", self.poll_interval, "-v", *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def process_only(self) -> Shipyard:
        """Start without waiting for readiness (a standby replica never becomes ready)."""
        self._launch()
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"shipyard exited:\n{self.log.read_text()[-3000:]}")
        return self.http.get(self.api("/readyz")).status_code == 200

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def environments(self) -> dict[str, dict[str, Any]]:
        items = self.http.get(self.api("/api/v1/environments")).json()["items"]
        return {item["name"]: item for item in items}

    def agent(self, agent: str, environment: str, path: str = "/") -> httpx.Response:
        """A request through the router, addressed by Host header as a browser would."""
        host = f"{agent}--{environment}.localhost:{self.port}"
        return self.http.get(self.api(path), headers={"host": host})

    def serving(self, agent: str, environment: str) -> dict[str, Any] | None:
        response = self.agent(agent, environment)
        return response.json() if response.status_code == 200 else None

    def wait_version(self, agent: str, environment: str, version: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            body = self.serving(agent, environment)
            return body if body and body["version"] == version else None

        return wait_for(check, what=f"{agent} in {environment} at {version}")

    def version_of(self, agent: str, environment: str) -> str | None:
        environments = self.environments()
        if environment not in environments:
            return None
        for item in environments[environment]["agents"]:
            if item["name"] == agent:
                return item["desiredVersion"]  # type: ignore[no-any-return]
        return None

    def wait_desired(self, agent: str, environment: str, commit: str) -> str:
        """The version the controller wants for `agent` once it has observed `commit`."""

        def check() -> str | None:
            env = self.environments().get(environment)
            if env is None or env["commit"] != commit:
                return None
            return self.version_of(agent, environment)

        return wait_for(check, what=f"{environment} to observe {commit[:8]}")

    def metrics(self) -> str:
        """The Prometheus exposition in the classic text format (what promtool reads)."""
        response = self.http.get(self.api("/metrics"))
        response.raise_for_status()
        return response.text

    def rollouts(self, agent: str | None = None, environment: str | None = None) -> list[Rollout]:
        store = Store(self.state / "shipyard.db")
        try:
            return store.rollouts(agent, environment)
        finally:
            store.close()

    def close(self) -> None:
        self.stop()
        self.http.close()


def preview_of(branch: str) -> str:
    return naming.environment_name(branch, "main")


def dump(shipyard: Shipyard) -> str:
    return json.dumps(shipyard.environments(), indent=2) + "\n" + shipyard.log.read_text()[-4000:]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
