"""The HTTP face of the fake: routing, content negotiation, watches, faults; and
`FakeApiServer`, the object tests start, configure and stop.

A stdlib `ThreadingHTTPServer` on loopback speaking HTTP/1.1 with keep-alive and exact
Content-Length (chunked transfer for watches), with Nagle's algorithm disabled on the
handler — without that every call of the official client costs ~45 ms (Nagle plus
delayed ACK). URLs are kube-apiserver's: `/api/v1/...`, `/apis/<group>/<version>/...`,
`namespaces/<ns>/<resource>[/<name>[/<subresource>]]`, cluster-wide collections; an
unknown path is the real server's 404 "the server could not find the requested
resource". `/_fake/...` is the admin API for tests in other processes (admin.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fake_apiserver import (
    admin,
    discovery,
    errors,
    kubeconfig,
    operations,
    tables,
    warning_headers,
)
from tests.fake_apiserver.controllers import (
    Behaviour,
    DeploymentController,
    Loop,
    Mode,
    NamespaceController,
)
from tests.fake_apiserver.faults import Faults, RequestLog, RequestRecord
from tests.fake_apiserver.garbage_collector import GarbageCollector
from tests.fake_apiserver.operations import Api, Target
from tests.fake_apiserver.pods import PodController
from tests.fake_apiserver.resources import Registry, ResourceType
from tests.fake_apiserver.store import Store
from tests.fake_apiserver.watch import Session, Settings

Json = dict[str, Any]

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})


@dataclass(frozen=True)
class Reply:
    code: int
    body: Any  # JSON-able, or str for text/plain
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WatchReply:
    session: Session
    transform: Callable[[Json], Json]


@dataclass(frozen=True)
class LogReply:
    """`pods/log?follow=true`: text lines, chunked, for as long as the pod lives."""

    lines: Iterator[str]


def _negotiate(accept: str) -> str:
    """table | partial | json, from an Accept header, as kube-apiserver chooses."""
    if not accept:
        return "json"
    for media in accept.split(","):
        parts = [p.strip() for p in media.split(";")]
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        base = parts[0].lower()
        if base not in ("application/json", "*/*", "application/*", "application/yaml"):
            continue
        shape = params.get("as", "")
        if not shape:
            return "json"
        if shape == "Table" and params.get("g") == "meta.k8s.io":
            return "table"
        if shape.startswith("PartialObjectMetadata") and params.get("g") == "meta.k8s.io":
            return "partial"
    raise errors.not_acceptable(accept)


class Router:
    """Maps (method, path, query) to an operation."""

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        self.api = fake.api
        self.registry = fake.registry

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Reply | WatchReply | LogReply:
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            static = self._static(parts)
            if static is not None:
                return static
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found_path()
        if not rest:
            raise _not_found_path()
        target = self._target(group, version, rest)
        return self._dispatch(method, target, query, headers, body)

    def _static(self, parts: list[str]) -> Reply | None:
        registry = self.registry
        joined = "/".join(parts)
        if joined == "version":
            return Reply(200, discovery.version())
        if joined in ("healthz", "livez", "readyz"):
            return Reply(200, "ok")
        if joined == "api":
            return Reply(200, discovery.api_versions(f"127.0.0.1:{self.fake.port}"))
        if joined == "apis":
            return Reply(200, discovery.api_group_list(registry))
        if joined == "openapi/v3":
            return Reply(200, discovery.openapi_v3_root(registry))
        doc: Json | None = None
        if len(parts) == 2 and parts[0] == "api":
            doc = discovery.resource_list(registry, "", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(registry, parts[1], parts[2])
        elif parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            group, version = (
                ("", parts[3])
                if parts[2] == "api"
                else (parts[3], parts[4] if len(parts) == 5 else "")
            )
            doc = discovery.openapi_v3_group_version(registry, group, version)
        else:
            return None
        if doc is None:
            raise _not_found_path()
        return Reply(200, doc)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        find = self.registry.find
        if rest[0] == "namespaces" and len(rest) >= 3:
            rt = find(group, version, rest[2])
            if rt is not None and rt.namespaced and len(rest) <= 5:
                return Target(
                    rt, rest[1], rest[3] if len(rest) > 3 else "", rest[4] if len(rest) > 4 else ""
                )
        rt = find(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise _not_found_path()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if rt.namespaced and name:
            raise _not_found_path()
        if sub and sub not in rt.subresources:
            raise _not_found_path()
        return Target(rt, "", name, sub)

    def _dispatch(
        self,
        method: str,
        target: Target,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> Reply | WatchReply | LogReply:
        rt = target.rt
        api = self.api
        agent = headers.get("user-agent", "")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if target.subresource and target.subresource not in rt.subresources:
            raise _not_found_path()
        if not target.name:
            if method == "GET":
                shape = _negotiate(headers.get("accept", ""))
                if query.get("watch", "").lower() in ("true", "1"):
                    self._require(rt, "watch")
                    session = Session(api, target, query, self.fake.watch_settings)
                    return WatchReply(session, self._watch_transform(rt, shape, query))
                self._require(rt, "list")
                listed = api.list_objects(target, query)
                return Reply(200, self._shape_list(rt, listed, shape, query))
            if method == "POST":
                if rt.namespaced and not target.namespace:
                    raise errors.method_not_allowed("create", rt.group, rt.plural)
                self._require(rt, "create")
                parsed = operations.parse_body(body, content_type or "application/json")
                result = api.create(target, parsed, query, agent)
                return Reply(result.code, result.body)
            if method == "DELETE":
                self._require(rt, "deletecollection")
                options = json.loads(body) if body.strip() else {}
                return Reply(200, api.delete_collection(target, options, query))
            raise errors.method_not_allowed(method.lower(), rt.group, rt.plural)
        if target.subresource == "log":
            if method != "GET":
                raise errors.method_not_allowed(method.lower(), rt.group, rt.plural)
            lines = self.fake.pods.log(target.namespace, target.name, query)
            if query.get("follow", "").lower() in ("true", "1"):
                return LogReply(lines)
            return Reply(200, "".join(lines))
        if target.subresource == "scale":
            if method == "GET":
                return Reply(200, api.get_scale(target))
            if method == "PUT":
                parsed = operations.parse_body(body, content_type or "application/json")
                return Reply(200, api.update_scale(target, parsed, query, agent).body)
            if method == "PATCH":
                return Reply(
                    200,
                    api.update_scale(target, None, query, agent, patch=(body, content_type)).body,
                )
            raise errors.method_not_allowed(method.lower(), rt.group, rt.plural)
        if method == "GET":
            shape = _negotiate(headers.get("accept", ""))
            if query.get("watch", "").lower() in ("true", "1"):
                self._require(rt, "watch")
                scoped = dict(query)
                scoped["fieldSelector"] = ",".join(
                    s for s in (query.get("fieldSelector"), f"metadata.name={target.name}") if s
                )
                session = Session(
                    api, Target(rt, target.namespace), scoped, self.fake.watch_settings
                )
                return WatchReply(session, self._watch_transform(rt, shape, query))
            obj = api.get(target)
            if shape == "table":
                return Reply(
                    200,
                    tables.table(
                        rt,
                        [obj],
                        {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                        query.get("includeObject", "Metadata"),
                    ),
                )
            if shape == "partial":
                return Reply(200, tables.partial(obj))
            return Reply(200, obj)
        if method == "PUT":
            self._require(rt, "update")
            parsed = operations.parse_body(body, content_type or "application/json")
            result = api.replace(target, parsed, query, agent)
            return Reply(result.code, result.body)
        if method == "PATCH":
            self._require(rt, "patch")
            result = api.patch(target, body, content_type, query, agent)
            return Reply(result.code, result.body)
        if method == "DELETE":
            self._require(rt, "delete")
            options = json.loads(body) if body.strip() else {}
            result = api.delete(target, options, query)
            return Reply(result.code, result.body)
        raise errors.method_not_allowed(method.lower(), rt.group, rt.plural)

    @staticmethod
    def _require(rt: ResourceType, verb: str) -> None:
        if not rt.supports(verb):
            raise errors.method_not_allowed(verb, rt.group, rt.plural)

    @staticmethod
    def _shape_list(rt: ResourceType, listed: Json, shape: str, query: dict[str, str]) -> Json:
        if shape == "json":
            return listed
        items = listed["items"]
        if shape == "partial":
            return tables.partial_list(items, listed["metadata"])
        return tables.table(rt, items, listed["metadata"], query.get("includeObject", "Metadata"))

    @staticmethod
    def _watch_transform(
        rt: ResourceType, shape: str, query: dict[str, str]
    ) -> Callable[[Json], Json]:
        if shape == "json":
            return lambda obj: obj
        if shape == "partial":
            return tables.partial
        first = [True]
        include = query.get("includeObject", "Metadata")

        def to_table(obj: Json) -> Json:
            with_columns = first[0]
            first[0] = False
            return tables.table(
                rt,
                [obj],
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                include,
                with_columns,
            )

        return to_table


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fake-kube-apiserver"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            payload = reply.body.encode()
            content_type = "text/plain; charset=utf-8"
        else:
            payload = json.dumps(reply.body, separators=(",", ":")).encode()
            if reply.code >= 400:
                payload += b"\n"  # a real server's Status bodies end with a newline
            content_type = "application/json"
        self.send_response(reply.code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _error(self, exc: errors.ApiError) -> Reply:
        return Reply(exc.code, exc.status(), tuple(exc.headers.items()))

    def _reset(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith("/_fake/"):
            code, payload = admin.handle(fake, method, path, body)
            self._send(Reply(code, payload))
            return
        record: Callable[[int], None] = lambda status: fake.requests.record(  # noqa: E731
            RequestRecord(
                method, path, tuple(query.items()), headers.get("content-type", ""), status
            )
        )
        fault = fake.faults.take(method, path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "reset":
            record(0)
            self._reset()
            return
        if fault is not None and fault.kind in ("error", "throttle") and not fault.after:
            record(fault.status)
            self._send(self._error(_fault_error(fault.status, fault.retry_after)))
            return
        with warning_headers.collect() as warned:
            try:
                if fake.token and headers.get("authorization") != f"Bearer {fake.token}":
                    raise errors.unauthorized()
                reply = fake.router.handle(method, path, query, headers, body)
            except errors.ApiError as exc:
                reply = self._error(exc)
            except Exception as exc:  # a bug in the fake: answer like a real server would
                fake.crashes.append(repr(exc))
                reply = self._error(errors.internal_error(repr(exc)))
        if warned and isinstance(reply, Reply):
            added = tuple(("Warning", warning_headers.header(text)) for text in warned)
            reply = Reply(reply.code, reply.body, reply.headers + added)
        if fault is not None and fault.kind in ("error", "throttle"):
            if isinstance(reply, WatchReply):
                reply.session.close()
            reply = self._error(_fault_error(fault.status, fault.retry_after))
        if isinstance(reply, WatchReply):
            record(200)
            self._stream(reply)
            return
        if isinstance(reply, LogReply):
            record(200)
            self._stream_log(reply)
            return
        record(reply.code)
        self._send(reply)

    def _stream_log(self, reply: LogReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in reply.lines:
                data = line.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _stream(self, reply: WatchReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def emit(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            outcome = reply.session.run(emit, reply.transform)
            if outcome == "abrupt":
                self._reset()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        finally:
            reply.session.close()


def _fault_error(status: int, retry_after: int) -> errors.ApiError:
    if status == 429:
        return errors.too_many_requests(retry_after)
    if status == 500:
        return errors.internal_error("injected fault")
    reasons = {502: "BadGateway", 503: "ServiceUnavailable", 504: "Timeout", 409: "Conflict"}
    return errors.ApiError(
        status, reasons.get(status, "InternalError"), f"injected fault (HTTP {status})"
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeApiServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on every client (idle keep-alive connections included)."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeApiServer:
    """A faithful-enough kube-apiserver on a loopback port (see BEHAVIOURS.md).

    >>> server = FakeApiServer().start()
    >>> server.url, server.kubeconfig(tmp_path / "kubeconfig")
    >>> server.faults.fail(2, 500, method="PATCH")
    >>> server.deployments.set_mode("stuck", "preview-x/support-bot", deadline=0.5)
    >>> server.requests.writes()
    >>> server.stop()
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history_size: int = 1000,
        deployment_mode: Mode = "ready",
        ready_delay: float = 0.05,
        stuck_after: float | None = None,
        namespace_termination_delay: float = 0.2,
        populate_namespaces: bool = True,
        token: str | None = None,
        bookmark_interval: float = 60.0,
        crds: tuple[Json, ...] = (),
    ) -> None:
        self.host = host
        self._requested_port = port
        self.token = token
        self.store = Store(history_size)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.faults = Faults()
        self.requests = RequestLog()
        self.crashes: list[str] = []
        self.watch_settings = Settings(bookmark_interval=bookmark_interval)
        self._loop = Loop()
        self.deployments = DeploymentController(
            self.api,
            self.registry,
            self._loop,
            Behaviour(mode=deployment_mode, delay=ready_delay, deadline=stuck_after),
        )
        self.namespaces = NamespaceController(
            self.api,
            self.registry,
            self._loop,
            termination_delay=namespace_termination_delay,
            populate=populate_namespaces,
        )
        self.pods = PodController(self.api, self.registry, self._loop, self.deployments)
        self.deployments.crashing = self.pods.crashing
        self.deployments.events = self.pods.events
        self.store.subscribe(self.deployments.on_event)
        self.store.subscribe(self.pods.on_event)
        self.store.subscribe(self.namespaces.on_event)
        self.garbage_collector = GarbageCollector(self.api, self.registry, self._loop)
        self.store.subscribe(self.garbage_collector.on_event)
        self.router = Router(self)
        self._crds = crds
        self._http: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        self._loop.start()
        self._bootstrap()
        self._http = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fake-apiserver-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.pods.stop()
        self.store.drop_watches("graceful")
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.close_connections()
            self._http = None
        self._loop.stop()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bootstrap(self) -> None:
        ns_rt = self.registry.find("", "v1", "namespaces")
        svc_rt = self.registry.find("", "v1", "services")
        assert ns_rt is not None
        assert svc_rt is not None
        for name in SYSTEM_NAMESPACES:
            if self.store.get(ns_rt.key, "", name) is None:
                self.api.create(
                    Target(ns_rt), {"metadata": {"name": name}}, {}, "kube-apiserver/v1.32.0"
                )
        if self.store.get(svc_rt.key, "default", "kubernetes") is None:
            self.api.create(
                Target(svc_rt, "default"),
                {
                    "metadata": {
                        "name": "kubernetes",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "clusterIP": "10.96.0.1",
                        "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                    },
                },
                {},
                "kube-apiserver/v1.32.0",
            )

        crd_rt = self.registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_rt is not None
        for crd in self._crds:
            if self.store.get(crd_rt.key, "", crd["metadata"]["name"]) is None:
                self.api.create(Target(crd_rt), crd, {}, "kube-apiserver/v1.32.0")

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the fake API server is not running")
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server to `path` and return the path."""
        return kubeconfig.write(
            path, self.url, token=self.token or kubeconfig.DEFAULT_TOKEN, namespace=namespace
        )

    # -- test controls -------------------------------------------------------------------

    def drop_watches(self, mode: str = "abrupt") -> int:
        """End every open watch: `abrupt` resets connections, `graceful` ends streams."""
        return self.store.drop_watches(mode)

    def set_history_size(self, size: int) -> None:
        """Keep only the last `size` events for watches (older resourceVersions → 410)."""
        self.store.set_history_size(size)

    def get_object(
        self, api_version: str, plural: str, name: str, namespace: str = ""
    ) -> Json | None:
        """Peek at a stored object without a request (not counted in the request log)."""
        group, _, version = api_version.rpartition("/")
        rt = self.registry.find(group, version, plural)
        if rt is None:
            return None
        return self.store.get(rt.key, namespace, name)
