"""`shipyard up`, the README's run command: example agents served with URLs printed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.controller_harness import free_port, pid_alive, wait_for


def test_up_serves_production_and_a_preview_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "up.log"
    command = [
        str(Path(sys.executable).parent / "shipyard"), "up", "--port", str(port),
        "--state-dir", str(tmp_path / "quickstart"),
    ]  # fmt: skip
    with output.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        text = wait_for(
            lambda: output.read_text() if "Try:" in output.read_text() else None,
            timeout=60,
            what="the quickstart banner",
        )
        urls = re.findall(r"(http://\S+\.localhost:\d+/)\s+(\w+)\s+ready", text)
        environments = {url.split("--", 1)[1].split(".")[0] for url, _ in urls}
        assert "production" in environments
        assert any(name.startswith("preview-feature-friendlier") for name in environments)
        assert len(urls) == 6, text
        with httpx.Client(trust_env=False) as client:
            for url, version in urls:
                host = url.removeprefix("http://").rstrip("/")
                reply = client.get(f"http://127.0.0.1:{port}/", headers={"host": host})
                assert reply.status_code == 200
                assert reply.json()["version"] == version
                assert reply.headers["x-shipyard-version"] == version
        pids = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(process.pid), "-f", "server.py"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
        ]
        assert len(pids) == 6
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode in (0, -signal.SIGINT)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if pid_alive(pid)]
