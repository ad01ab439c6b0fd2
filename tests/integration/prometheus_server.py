"""The real Prometheus server (Debian package `prometheus`) for integration tests.

Scrapes one target every second and answers PromQL over its HTTP API. Without the binary
a test skips locally and fails in CI (where `.ci/test` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.controller_harness import free_port, wait_for


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is missing; CI must run this test (Debian package `prometheus`)")
    pytest.skip(f"{name} is not installed (Debian package `prometheus`); CI runs this test")


class Prometheus:
    """`prometheus` scraping one target every second, queried over its HTTP API."""

    def __init__(self, executable: str, directory: Path, target: str) -> None:
        directory.mkdir(parents=True)
        self.port = free_port()
        self.config = directory / "prometheus.yml"
        self.config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: shipyard\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.log = directory / "prometheus.log"
        command = [
            executable,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", trust_env=False)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            return self.http.get("/-/ready").status_code == 200

        wait_for(ready, what="prometheus to start")
        wait_for(lambda: self.query('up{job="shipyard"} == 1'), what="the first scrape")

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = self.http.get("/api/v1/query", params={"query": promql}).json()
        assert body["status"] == "success", (promql, body)
        return body["data"]["result"]  # type: ignore[no-any-return]

    def values(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant vector → {sorted label pairs: value}."""
        return {
            tuple(sorted(item["metric"].items())): float(item["value"][1])
            for item in self.query(promql)
        }

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.http.close()
