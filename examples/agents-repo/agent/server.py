"""A tiny, dependency-free HTTP agent used by the Shipyard example repository.

It exists so the example agents can be deployed, previewed and rolled out entirely
offline: every manifest in ``agents/`` runs this one script, and Shipyard tells the
instances apart through environment variables (``SHIPYARD_AGENT``,
``SHIPYARD_ENVIRONMENT``, ``SHIPYARD_VERSION``, ``SHIPYARD_COMMIT``, ``SHIPYARD_MODEL``,
``SHIPYARD_PROMPT_FILE`` / ``SHIPYARD_PROMPT``). Instead of calling a real language
model it answers with a deterministic stand-in, so the same message always gets the
same reply and tests can assert on it.

Endpoints:

* ``GET /healthz`` -- ``{"status": "ok"}``
* ``GET /`` -- who this instance is (agent, environment, version, commit, model, prompt)
* ``POST /chat`` or ``POST /`` with ``{"message": "..."}`` -- a deterministic reply
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

DEFAULT_PORT = 8000
MAX_BODY_BYTES = 1 << 20


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def identity() -> dict[str, str]:
    """Who this instance is, as told by Shipyard through the environment."""
    return {
        "agent": _env("SHIPYARD_AGENT", "agent"),
        "environment": _env("SHIPYARD_ENVIRONMENT", "local"),
        "version": _env("SHIPYARD_VERSION", "dev"),
        "commit": _env("SHIPYARD_COMMIT", ""),
    }


def load_prompt() -> str:
    """The system prompt: from SHIPYARD_PROMPT_FILE if set, else SHIPYARD_PROMPT."""
    path = _env("SHIPYARD_PROMPT_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            log(f"cannot read prompt file {path!r}: {exc}")
            return ""
    return _env("SHIPYARD_PROMPT")


def first_line(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            return stripped
    return ""


def fake_reply(agent: str, version: str, prompt: str, message: str) -> dict[str, Any]:
    """A deterministic stand-in for a model: same inputs, same output."""
    words = message.split()
    seed = f"{agent}\x00{version}\x00{prompt}\x00{message}"
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()
    thought = digest[:12]
    reply = (
        f"[{agent}@{version}] You said {len(words)} word"
        f"{'' if len(words) == 1 else 's'}: {message.strip()!r} (thought {thought})"
    )
    return {"reply": reply, "thought": thought, "words": len(words)}


def log(line: str) -> None:
    print(line, flush=True)


class AgentHandler(BaseHTTPRequestHandler):
    server_version = "shipyard-example-agent/0.1"
    # Keep-alive: Shipyard's router and health probes reuse connections. Every reply
    # carries Content-Length, which HTTP/1.1 persistence needs.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, a reused
    # connection waits ~40 ms for the delayed ACK between them.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        # Replaced by one line per request in _send; keep stderr quiet.
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, sort_keys=True).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        log(f"{self.command} {self.path} {status} {identity()['agent']}")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, {"status": "ok"})
        elif path == "/":
            prompt = load_prompt()
            body: dict[str, Any] = {**identity(), "prompt": first_line(prompt)}
            model = _env("SHIPYARD_MODEL")
            if model:
                body["model"] = model
            self._send(200, body)
        else:
            self._send(404, {"error": "not found", "path": path})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/", "/chat"):
            self._send(404, {"error": "not found", "path": path})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self._send(400, {"error": "invalid Content-Length"})
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self._send(400, {"error": f"malformed JSON: {exc}"})
            return
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, str):
            self._send(400, {"error": 'expected a JSON object {"message": "..."}'})
            return
        who = identity()
        result = fake_reply(who["agent"], who["version"], load_prompt(), message)
        self._send(200, {**who, **result})


def main() -> int:
    port = int(_env("PORT") or DEFAULT_PORT)
    # Loopback by default (the local target proxies to it); a container sets HOST=0.0.0.0.
    host = _env("HOST") or "127.0.0.1"
    server = ThreadingHTTPServer((host, port), AgentHandler)
    server.daemon_threads = True

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever() returns, so call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    who = identity()
    log(
        f"agent {who['agent']} version {who['version']} ({who['environment']}) "
        f"listening on http://{host}:{server.server_address[1]}/"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    log(f"agent {who['agent']} stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
