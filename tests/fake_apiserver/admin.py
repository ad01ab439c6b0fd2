"""`/_fake/...`: the test-control API for processes that cannot call Python methods.

A controller under test may run in another process (a CLI, `shipyard serve`); its test
still needs to inject faults, read the request log and steer Deployments. Endpoints
(JSON in, JSON out; never logged, never faulted):

    GET    /_fake/healthz
    GET    /_fake/requests            {"requests": [{method, path, query, contentType, status}]}
    DELETE /_fake/requests            clear the log
    POST   /_fake/faults              {"kind": "error"|"throttle"|"delay"|"reset", "count": 1,
                                       "status": 500, "retryAfter": 1, "seconds": 0.5,
                                       "method": "PATCH", "path": "regex", "after": false}
    GET    /_fake/faults              {"pending": n}
    DELETE /_fake/faults              clear pending faults
    POST   /_fake/watches/drop        {"mode": "abrupt"|"graceful"} → {"dropped": n}
    PUT    /_fake/deployments/mode    {"mode": "ready"|"slow"|"stuck"|"manual"|"off",
                                       "name": "ns/name" | "name" | null,
                                       "delay": s, "deadline": s}
    PUT    /_fake/history             {"size": n}
    PUT    /_fake/pods/crash          {"name": "ns/deployment" | "deployment",
                                       "reason": "CrashLoopBackOff" | … | null,
                                       "message": "", "exitCode": 1, "restarts": 3,
                                       "newOnly": false}
    PUT    /_fake/pods/logs           {"name": …, "lines": [...], "previous": [...]}
    POST   /_fake/pods/logs           {"name": …, "line": "one more line"}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.fake_apiserver.controllers import MODES

if TYPE_CHECKING:
    from tests.fake_apiserver.server import FakeApiServer

Json = dict[str, Any]


def _body(raw: bytes) -> Json:
    if not raw.strip():
        return {}
    parsed = json.loads(raw)
    if not isinstance(parsed, dict):
        raise ValueError("expected a JSON object")
    return parsed


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def handle(fake: FakeApiServer, method: str, path: str, raw: bytes) -> tuple[int, Json]:
    try:
        body = _body(raw)
        return _route(fake, method, path.rstrip("/"), body)
    except (ValueError, TypeError, KeyError) as exc:
        return 400, {"error": str(exc)}


def _route(fake: FakeApiServer, method: str, path: str, body: Json) -> tuple[int, Json]:
    if path == "/_fake/healthz":
        return 200, {"ok": True}
    if path == "/_fake/requests":
        if method == "DELETE":
            fake.requests.clear()
            return 200, {"cleared": True}
        return 200, {
            "requests": [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.params,
                    "contentType": r.content_type,
                    "status": r.status,
                }
                for r in fake.requests.all()
            ]
        }
    if path == "/_fake/faults":
        if method == "DELETE":
            fake.faults.clear()
            return 200, {"cleared": True}
        if method == "GET":
            return 200, {"pending": fake.faults.pending()}
        kind = body.get("kind", "error")
        count = int(body.get("count", 1))
        where = {"method": body.get("method"), "path": body.get("path")}
        if kind == "error":
            fake.faults.fail(
                count, int(body.get("status", 500)), after=bool(body.get("after")), **where
            )
        elif kind == "throttle":
            fake.faults.throttle(count, int(body.get("retryAfter", 1)), **where)
        elif kind == "delay":
            fake.faults.delay(float(body.get("seconds", 1.0)), count, **where)
        elif kind == "reset":
            fake.faults.reset(count, **where)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        return 201, {"pending": fake.faults.pending()}
    if path == "/_fake/watches/drop" and method == "POST":
        return 200, {"dropped": fake.drop_watches(str(body.get("mode", "abrupt")))}
    if path == "/_fake/deployments/mode" and method in ("PUT", "POST"):
        mode = str(body["mode"])
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        fake.deployments.set_mode(
            mode,
            body.get("name"),
            delay=_optional_float(body.get("delay")),
            deadline=_optional_float(body.get("deadline")),
        )
        return 200, {"mode": mode, "name": body.get("name")}
    if path == "/_fake/pods/crash" and method in ("PUT", "POST"):
        exit_code = body.get("exitCode")
        fake.pods.set_crash(
            str(body["name"]),
            body.get("reason"),
            message=str(body.get("message", "")),
            exit_code=None if exit_code is None else int(exit_code),
            restarts=int(body.get("restarts", 3)),
            new_only=bool(body.get("newOnly", False)),
        )
        return 200, {"name": body["name"], "reason": body.get("reason")}
    if path == "/_fake/pods/logs" and method == "PUT":
        fake.pods.set_logs(
            str(body["name"]),
            [str(line) for line in body.get("lines", [])],
            previous=[str(line) for line in body.get("previous", [])],
        )
        return 200, {"name": body["name"]}
    if path == "/_fake/pods/logs" and method == "POST":
        fake.pods.append_log(str(body["name"]), str(body["line"]))
        return 200, {"name": body["name"]}
    if path == "/_fake/history" and method in ("PUT", "POST"):
        fake.set_history_size(int(body["size"]))
        return 200, {"size": int(body["size"])}
    return 404, {"error": f"no admin endpoint {method} {path}"}
