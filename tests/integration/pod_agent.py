"""An agent for gateway tests: it says which version and which pod answered.

Run by the fake kubelet as a container's entrypoint: it listens on `HOST:PORT` (the
pod's own loopback address and container port) and answers every path with JSON
`{"version": SHIPYARD_VERSION, "pod": HOSTNAME, "tone": TONE}` (`TONE` from the agent's
`spec.env`, for eval cases to judge), with the status in `POD_AGENT_STATUS` (200 unless
set: a broken version answers 500); `/healthz` answers `ok`.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go out in two writes: with Nagle on, each kept-alive request would
    # wait for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        status = 200
        if self.path == "/healthz":
            body = b"ok"
        else:
            status = int(os.environ.get("POD_AGENT_STATUS", "200"))
            answer = {"version": os.environ.get("SHIPYARD_VERSION", ""),
                      "pod": os.environ.get("HOSTNAME", ""),
                      "tone": os.environ.get("TONE", "")}  # fmt: skip
            body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
