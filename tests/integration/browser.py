"""Debian's headless Chromium driven over the DevTools protocol, for the dashboard's tests.

Only what the tests need: open a page, evaluate an expression in it, take a screenshot.
The protocol's WebSocket is spoken with `websocket-client`, which the kubernetes client
already brings; no browser-automation package is needed.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket

from tests.integration.controller_harness import free_port, wait_for

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def executable() -> str:
    """The installed Chromium, or a skip that says how to get one."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (.ci/test installs Debian's package)")
    return found


class Chromium:
    """One headless browser with one tab, closed with `close`."""

    def __init__(self) -> None:
        # Chromium's helper processes can still be writing here as the browser exits.
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        port = free_port()
        profile = f"--user-data-dir={self._profile.name}"
        debugging = (f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1")
        self.process = subprocess.Popen(
            [executable(), *FLAGS, profile, *debugging, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        devtools = f"http://127.0.0.1:{port}/json/list"
        with httpx.Client(trust_env=False, timeout=5.0) as http:
            pages = wait_for(
                lambda: [t for t in http.get(devtools).json() if t["type"] == "page"],
                what="Chromium's DevTools endpoint",
            )
        self._socket = websocket.create_connection(
            pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are dropped)."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == number:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]

    def open(self, url: str, width: int = 1280, height: int = 800) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=width < 600,
        )  # fmt: skip
        self.call("Page.navigate", url=url)
        wait_for(
            lambda: (
                self.evaluate("document.readyState") == "complete"
                and self.evaluate("location.href") == url
            ),
            what=f"{url} to load",
        )

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> None:
        picture = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(picture["data"]))

    def close(self) -> None:
        self._socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._profile.cleanup()
