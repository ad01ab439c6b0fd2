"""An agent for observability tests: it answers with what it received.

`GET|POST|PUT /anything` answers 200 with JSON: the path, the request headers (so a test
sees the `traceparent` the router passed on), the body's size and SHA-256, and the
version that answered (so two versions answer the same request differently).
`/status/NNN` answers with that status; `/stream/N` sends N chunks of 64 KiB;
`/static/...` answers the same whatever the version;
`/slow/SECONDS` waits before answering; `/bytes/N` answers N binary bytes.
"""

from __future__ import annotations

SOURCE = r"""
import hashlib, json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("SHIPYARD_VERSION", "dev")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return self._send(200, b"ok", "text/plain")
        if path.startswith("/stream/"):
            count = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(count):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            return
        if path.startswith("/static/"):
            return self._send(200, json.dumps({"path": path, "same": True}).encode(),
                              "application/json")
        if path.startswith("/slow/"):
            time.sleep(float(path.split("/")[2]))
        if path.startswith("/bytes/"):
            size = int(path.split("/")[2])
            return self._send(200, bytes(range(256)) * (size // 256) + bytes(size % 256),
                              "application/octet-stream")
        status = int(path.split("/")[2]) if path.startswith("/status/") else 200
        payload = {
            "path": self.path,
            "method": self.command,
            "version": VERSION,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "bodyBytes": len(body),
            "bodySha256": hashlib.sha256(body).hexdigest(),
        }
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _reply

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
