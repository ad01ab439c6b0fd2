"""The eval runner over real HTTP: assertions, deadlines, bounded answers, cache, limit."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controller.reconciler.eval_runs import Endpoint, EvalRequest, EvalRunner
from controller.specs import evalsuites
from controller.specs.tree import FilesystemTree
from controller.store.eval_results import EvalResults


class Agent(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: Agent

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            self._answer()
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if self.path == "/hang":
            self.server.release.wait(30)
            return
        if self.path == "/huge":
            self.send_response(200)
            self.send_header("content-length", str(50 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(800):
                    self.wfile.write(b"a" * 65536)
            except OSError:
                pass
            return
        if self.path == "/slow":
            time.sleep(0.05)
        answer = json.dumps(
            {
                "reply": f"you said {body.decode()}",
                "items": [{"n": 1}],
                "host": self.headers["host"],
            }
        ).encode()
        self.send_response(201 if self.path == "/created" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def agent() -> Iterator[Agent]:
    server = Agent()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def suite_of(tmp_path: Path, cases: str, name: str = "s") -> evalsuites.Suite:
    (tmp_path / "evals").mkdir(exist_ok=True)
    (tmp_path / "evals" / f"{name}.yaml").write_text(
        "apiVersion: shipyard.dev/v1alpha1\nkind: EvalSuite\n"
        f"metadata: {{name: {name}}}\nspec:\n  agent: alpha\n  cases:\n{cases}"
    )
    result = evalsuites.collect(FilesystemTree(tmp_path), {"alpha"}, paths=[f"evals/{name}.yaml"])
    assert not result.problems, [p.render() for p in result.problems]
    return result.suites[0]


CASES = """\
    - name: passes
      request: {path: /chat, body: hello, headers: {X-Team: qa}}
      expect:
        status: 200
        contains: ["you said hello"]
        notContains: ["Traceback"]
        regex: "said h[a-z]+"
        jsonPath: [{path: "$.items[0].n", equals: 1}]
        jsonSchema: {type: object, required: [reply]}
        maxLatencyMs: 60000
    - name: wrong-status
      request: {path: /created, json: {}}
      expect: {status: 200}
    - name: missing-text
      request: {path: /chat, body: bye}
      expect: {contains: ["hello"]}
    - name: forbidden-text
      request: {path: /chat, body: oops}
      expect: {notContains: ["oops"]}
    - name: no-match
      request: {path: /chat}
      expect: {regex: "^nothing"}
    - name: wrong-value
      request: {path: /chat}
      expect: {jsonPath: [{path: "$.items[0].n", equals: true}]}
    - name: missing-path
      request: {path: /chat}
      expect: {jsonPath: [{path: "$.nope", equals: 1}]}
    - name: schema
      request: {path: /chat}
      expect: {jsonSchema: {type: object, required: [answer]}}
    - name: hangs
      request: {path: /hang}
      expect: {status: 200}
    - name: huge
      request: {path: /huge}
      expect: {contains: ["b"]}
"""


def run(runner: EvalRunner, request: EvalRequest) -> None:
    async def main() -> None:
        try:
            await runner.evaluate(request)
        finally:
            await runner.close()

    asyncio.run(main())


def test_each_assertion_passes_or_fails_with_its_reason(agent: Agent, tmp_path: Path) -> None:
    suite = suite_of(tmp_path, CASES)
    results = EvalResults(tmp_path / "db.sqlite")
    endpoint = Endpoint(f"http://127.0.0.1:{agent.server_address[1]}")
    run(EvalRunner(results, case_timeout=2.0), EvalRequest("alpha", "v1", endpoint, (suite,)))
    found = {result.case: result for result in results.results("alpha", "v1")}
    assert found["passes"].passed, found["passes"].reason
    reasons = {name: result.reason for name, result in found.items() if not result.passed}
    assert reasons == {
        "wrong-status": "status 201, expected 200",
        "missing-text": "answer does not contain 'hello'",
        "forbidden-text": "answer contains 'oops'",
        "no-match": "answer does not match /^nothing/",
        "wrong-value": "$.items[0].n is 1, expected true",
        "missing-path": "$.nope is missing",
        "schema": "answer does not satisfy the schema: 'answer' is a required property",
        "hangs": "no answer within 2 s",
        "huge": "answer does not contain 'b'",
    }
    # In the suite's order, whatever order they finished in.
    assert [result.case for result in results.results("alpha", "v1")][:2] == [
        "passes",
        "wrong-status",
    ]


def test_an_evaluated_version_is_not_run_again_unless_the_suite_changes(
    agent: Agent, tmp_path: Path
) -> None:
    cases = "    - name: up\n      request: {path: /chat}\n      expect: {status: 200}\n"
    results = EvalResults(tmp_path / "db.sqlite")
    endpoint = Endpoint(f"http://127.0.0.1:{agent.server_address[1]}")
    suite = suite_of(tmp_path, cases)
    run(EvalRunner(results), EvalRequest("alpha", "v1", endpoint, (suite,)))
    run(EvalRunner(results), EvalRequest("alpha", "v1", endpoint, (suite,)))
    assert agent.requests == 1
    changed = suite_of(tmp_path, cases.replace("200", "201"))
    run(EvalRunner(results), EvalRequest("alpha", "v1", endpoint, (changed,)))
    assert agent.requests == 2
    (latest,) = results.results("alpha", "v1", {"s": changed.digest})
    assert latest.reason == "status 200, expected 201"
    run(EvalRunner(results), EvalRequest("alpha", "v2", endpoint, (changed,)))
    assert agent.requests == 3


def test_cases_share_the_concurrency_limit(agent: Agent, tmp_path: Path) -> None:
    cases = "".join(
        f"    - name: c{i}\n      request: {{path: /slow}}\n      expect: {{status: 200}}\n"
        for i in range(12)
    )
    results = EvalResults(tmp_path / "db.sqlite")
    endpoint = Endpoint(f"http://127.0.0.1:{agent.server_address[1]}")
    run(
        EvalRunner(results, concurrency=2),
        EvalRequest("alpha", "v1", endpoint, (suite_of(tmp_path, cases),)),
    )
    assert agent.requests == 12
    assert agent.most_in_flight <= 2
    assert all(result.passed for result in results.results("alpha", "v1"))


def test_a_router_url_is_reached_on_loopback_with_its_host(agent: Agent, tmp_path: Path) -> None:
    port = agent.server_address[1]
    endpoint = Endpoint.through_router("http://alpha--preview-x.localhost:8080/", port)
    assert endpoint == Endpoint(f"http://127.0.0.1:{port}", "alpha--preview-x.localhost:8080")
    cases = (
        "    - name: host\n      request: {path: /chat}\n"
        "      expect: {contains: ['alpha--preview-x.localhost:8080']}\n"
    )
    results = EvalResults(tmp_path / "db.sqlite")
    run(EvalRunner(results), EvalRequest("alpha", "v1", endpoint, (suite_of(tmp_path, cases),)))
    (result,) = results.results("alpha", "v1")
    assert result.passed, result.reason


def test_a_version_that_cannot_be_reached_is_not_cached_and_runs_again(
    agent: Agent, tmp_path: Path
) -> None:
    cases = "    - name: up\n      request: {path: /chat}\n      expect: {status: 200}\n"
    results = EvalResults(tmp_path / "db.sqlite")
    suite = suite_of(tmp_path, cases)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        gone = Endpoint(f"http://127.0.0.1:{closed.getsockname()[1]}")
        run(EvalRunner(results), EvalRequest("alpha", "v1", gone, (suite,)))
    finally:
        closed.close()
    assert not results.has("alpha", "v1", suite.name, suite.digest)
    assert results.results("alpha", "v1") == []

    up = Endpoint(f"http://127.0.0.1:{agent.server_address[1]}")
    run(EvalRunner(results), EvalRequest("alpha", "v1", up, (suite,)))
    (result,) = results.results("alpha", "v1")
    assert result.passed, result.reason
