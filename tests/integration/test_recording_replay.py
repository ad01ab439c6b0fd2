"""Recording production traffic and replaying it against a preview.

A real `shipyard serve` with API tokens runs the echo agent (`echo_agent.py`) in
production with `spec.observability.record` on and in a preview at a new version. Real
requests go through the router, hostile ones included (secrets in headers, binary and
oversized bodies, a 10 MiB stream, a slow answer); then the real `shipyard replay` sends
them to the preview and reports what changed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.api import proxy, recording, replay, tracing
from controller.specs import model
from controller.store.recordings import Recorded, Recordings, Retention
from tests.gitrepos import Upstream
from tests.integration import echo_agent
from tests.integration.controller_harness import Shipyard, manifest, preview_of, seed, wait_for

SHIPYARD = Path(sys.executable).parent / "shipyard"
READ, WRITE = "replay-read-token", "replay-write-token"
PREVIEW = preview_of("feature")
MARKER = "private-question-7f3a"  # a body nobody may see outside the recordings
STREAM_CHUNKS = 160  # 10 MiB

RECORDING = """\
  observability:
    record:
      enabled: true
      maxBodyBytes: 1024
      redactHeaders: [X-Api-Key]
"""


def bot(temperature: float) -> str:
    text = manifest("bot", command='["python3", "agent/echo.py"]', temperature=temperature)
    return text + RECORDING


@dataclass
class World:
    shipyard: Shipyard
    state: Path

    def call(
        self, path: str, method: str = "GET", environment: str = "production", **kwargs: Any
    ) -> httpx.Response:
        host = f"bot--{environment}.localhost:{self.shipyard.port}"
        headers = {"host": host, **kwargs.pop("headers", {})}
        return self.shipyard.http.request(
            method, self.shipyard.api(path), headers=headers, **kwargs
        )

    def recorded(self, environment: str = "production") -> list[dict[str, Any]]:
        path = f"/api/v1/environments/{environment}/agents/bot/recordings"
        response = self.shipyard.http.get(self.shipyard.api(path))
        response.raise_for_status()
        return list(response.json()["items"])

    def cli(self, *arguments: str, token: str = WRITE) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SHIPYARD), *arguments, "--server", self.shipyard.api("")],
            env={**os.environ, "SHIPYARD_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("replay")
    upstream = Upstream(root / "git")
    seed(upstream)
    main = upstream.commit(
        {"agent/echo.py": echo_agent.SOURCE, "agents/bot.yaml": bot(0.2)},
        message="Add the recorded echo bot",
        branch="main",
    )
    upstream.push("main")
    feature = upstream.commit({"agents/bot.yaml": bot(0.9)}, message="Warmer", branch="feature")
    upstream.push("feature")
    state = root / "state"
    shipyard = Shipyard(
        upstream.bare, state, "--read-token", READ, "--write-token", WRITE, token=WRITE
    ).start()
    try:
        shipyard.wait_desired("bot", "production", main)
        shipyard.wait_desired("bot", PREVIEW, feature)
        world = World(shipyard, state)
        for environment in ("production", PREVIEW):
            wait_for(
                lambda env=environment: world.call("/healthz", environment=env).is_success,  # type: ignore[misc]
                what=f"the bot to serve in {environment}",
            )
        yield world
    finally:
        shipyard.close()


@pytest.fixture(scope="module")
def traffic(world: World) -> dict[str, httpx.Response]:
    """The production traffic every test reads: sent once, in this order."""
    sent = {
        "chat": world.call(
            "/chat?lang=en",
            "POST",
            json={"message": MARKER},
            headers={
                "authorization": "Bearer user-secret-token",
                "cookie": "session=user-secret-cookie",
                "x-api-key": "user-secret-key",
                "x-request-tag": "kept",
            },
        ),
        "static": world.call("/static/faq"),
        "health": world.call("/healthz"),
        "upload": world.call("/upload", "POST", content=os.urandom(5000)),
        "binary": world.call("/bytes/3000"),
        "stream": world.call(f"/stream/{STREAM_CHUNKS}"),
        "slow": world.call("/slow/2"),
    }
    for name, response in sent.items():
        assert response.status_code == 200, name
    wait_for(lambda: len(world.recorded()) >= 6, what="six recorded requests")
    return sent


def by_path(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["path"]: item for item in items}


def test_requests_are_recorded_with_secrets_redacted_and_bodies_capped(
    world: World, traffic: dict[str, httpx.Response]
) -> None:
    recorded = by_path(world.recorded())
    assert "/healthz" not in recorded  # health checks are never recorded
    assert set(recorded) == {
        "/chat", "/static/faq", "/upload", "/bytes/3000", f"/stream/{STREAM_CHUNKS}", "/slow/2"
    }  # fmt: skip

    chat = recorded["/chat"]
    headers = dict(chat["requestHeaders"])
    assert headers["authorization"] == "[REDACTED]"
    assert headers["cookie"] == "[REDACTED]"
    assert headers["x-api-key"] == "[REDACTED]"
    assert headers["x-request-tag"] == "kept"
    assert "user-secret" not in json.dumps(chat)
    assert json.loads(base64.b64decode(chat["requestBodyBase64"])) == {"message": MARKER}
    assert chat["query"] == "lang=en"
    assert chat["status"] == 200
    assert base64.b64decode(chat["responseBodyBase64"]) == traffic["chat"].content[:1024]
    # The response headers as the client got them: stamped, without hop-by-hop ones.
    response_headers = dict(chat["responseHeaders"])
    assert response_headers["x-shipyard-version"] == traffic["chat"].headers["x-shipyard-version"]
    assert response_headers["x-shipyard-environment"] == "production"
    assert "connection" not in response_headers
    assert len(chat["traceId"]) == 32
    assert chat["complete"] is True

    upload = recorded["/upload"]
    assert (upload["requestBytes"], upload["requestTruncated"]) == (5000, True)
    assert len(base64.b64decode(upload["requestBodyBase64"])) == 1024

    binary = recorded["/bytes/3000"]
    assert (binary["responseBytes"], binary["responseTruncated"]) == (3000, True)
    assert base64.b64decode(binary["responseBodyBase64"]) == traffic["binary"].content[:1024]

    stream = recorded[f"/stream/{STREAM_CHUNKS}"]
    assert stream["responseBytes"] == STREAM_CHUNKS * 65536 == len(traffic["stream"].content)
    assert stream["responseTruncated"] is True
    assert len(base64.b64decode(stream["responseBodyBase64"])) == 1024


def test_recordings_stay_out_of_logs_metrics_and_unauthenticated_hands(
    world: World, traffic: dict[str, httpx.Response]
) -> None:
    assert MARKER not in world.shipyard.log.read_text()
    assert MARKER not in world.shipyard.metrics()
    path = world.shipyard.api("/api/v1/environments/production/agents/bot/recordings")
    assert httpx.get(path, trust_env=False).status_code == 401
    read = httpx.get(path, headers={"authorization": f"Bearer {READ}"}, trust_env=False)
    assert read.status_code == 200
    replay_path = world.shipyard.api(f"/api/v1/environments/{PREVIEW}/agents/bot/replay")
    refused = httpx.post(
        replay_path,
        json={"from": "production"},
        headers={"authorization": f"Bearer {READ}"},
        trust_env=False,
    )
    assert refused.status_code == 403  # replay sends traffic: a write


def test_replay_into_a_preview_reports_what_changed(
    world: World, traffic: dict[str, httpx.Response]
) -> None:
    result = world.cli(
        "replay", "bot", "--from", "production", "--to", PREVIEW, "--timeout", "1s", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    items = {item["request"]["path"]: item for item in report["items"]}

    chat = items["/chat"]
    assert chat["changed"] is True  # the echo answers with its version
    assert chat["from"]["version"] != chat["to"]["version"]
    assert chat["from"]["status"] == chat["to"]["status"] == 200
    assert chat["from"]["environment"] == "production"
    assert chat["to"]["environment"] == PREVIEW
    assert '"version"' in chat["diff"]
    assert chat["to"]["latencySeconds"] > 0
    # The question was replayed whole, redacted headers left out.
    answered = json.loads(chat["to"]["body"])
    assert answered["bodySha256"] == json.loads(traffic["chat"].content)["bodySha256"]
    assert "authorization" not in answered["headers"]
    assert answered["headers"]["x-request-tag"] == "kept"
    assert answered["headers"]["x-shipyard-replay"]

    assert items["/static/faq"]["changed"] is False
    assert items["/bytes/3000"]["changed"] is False  # compared as far as it was recorded
    assert items["/bytes/3000"]["to"]["binary"] is True
    assert items[f"/stream/{STREAM_CHUNKS}"]["changed"] is False
    upload = items["/upload"]
    assert upload["failed"] is True
    assert "cut at recording" in upload["to"]["error"]
    slow = items["/slow/2"]
    assert slow["failed"] is True
    assert slow["to"]["error"] == "no answer within 1s"

    summary = report["summary"]
    assert summary["requests"] == 6
    assert (summary["changed"], summary["failed"], summary["unchanged"]) == (1, 2, 3)
    assert summary["from"]["p50"] > 0
    assert summary["to"]["p95"] >= summary["to"]["p50"] > 0

    # Nothing recorded is lost by replaying it, failed requests included.
    assert len(world.recorded()) == 6


def test_replay_prints_a_table_diffs_and_a_summary(
    world: World, traffic: dict[str, httpx.Response]
) -> None:
    result = world.cli("replay", "bot", "--from", "production", "--to", PREVIEW, "--last", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "#", "METHOD", "PATH", "FROM", "TO", "FROM", "LATENCY", "TO", "LATENCY", "CHANGED"
    ]  # fmt: skip
    assert [line.split()[2] for line in lines[1:4]] == [
        "/bytes/3000", f"/stream/{STREAM_CHUNKS}", "/slow/2"
    ]  # fmt: skip
    # Given time, the slow one answers: with its own version, so changed, with a diff.
    assert "#3 GET /slow/2:" in lines
    assert any(line.strip().startswith('+  "version": ') for line in lines)
    assert lines[-2] == "3 requests: 1 changed, 0 failed, 2 unchanged"
    assert lines[-1].startswith("latency p50 ")


def test_production_is_replayed_into_only_when_allowed(
    world: World, traffic: dict[str, httpx.Response]
) -> None:
    refused = world.cli("replay", "bot", "--from", PREVIEW, "--to", "production")
    assert refused.returncode == 2
    assert "--allow-production" in refused.stderr
    api = world.shipyard.http.post(
        world.shipyard.api("/api/v1/environments/production/agents/bot/replay"),
        json={"from": "production"},
    )
    assert api.status_code == 409
    assert "allow-production" in api.json()["detail"]
    allowed = world.cli(
        "replay", "bot", "--from", "production", "--to", "production", "--allow-production",
        "--last", "1", "-o", "json",
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["summary"]["requests"] == 1


def test_a_replay_target_that_does_not_exist_is_a_clear_error(
    world: World, traffic: dict[str, httpx.Response]
) -> None:
    missing = world.cli("replay", "bot", "--from", "production", "--to", "preview-nowhere")
    assert missing.returncode == 1
    assert "preview-nowhere" in missing.stderr
    assert "Traceback" not in missing.stderr
    empty = world.cli("replay", "bot", "--from", PREVIEW, "--to", PREVIEW)
    assert empty.returncode == 0
    assert f"No recorded requests of bot in {PREVIEW}" in empty.stderr


# The parts on their own ---------------------------------------------------------------------


def test_settings_default_off_and_always_redact_credentials() -> None:
    settings = model.record_settings({})
    assert (settings.enabled, settings.max_body_bytes, settings.sample_rate) == (False, 65536, 1.0)
    assert settings.redacted == {"authorization", "cookie", "set-cookie"}
    custom = model.record_settings(
        {"observability": {"record": {"enabled": True, "redactHeaders": ["X-Key", "Cookie"]}}}
    )
    assert custom.redacted == {"authorization", "cookie", "set-cookie", "x-key"}
    policy = recording.policy_of_manifest({"spec": {"healthCheck": {"path": "/ready"}}})
    assert policy.health_path == "/ready"


def record(number: int, size: int = 100, at: float = 1000.0) -> Recorded:
    return Recorded(
        at + number, "a", "e", "v1", "t", "GET", f"/{number}", "", (), b"x" * size, size,
        200, (), b"y" * size, size, 0.01, True,
    )  # fmt: skip


def test_the_store_keeps_count_age_and_total_size_bounded(tmp_path: Path) -> None:
    store = Recordings(tmp_path / "db.sqlite", max_total_bytes=10_000)
    try:
        keep_all = {("a", "e"): Retention(max_requests=1000, max_age_seconds=1e12)}
        store.add([record(n, size=1000) for n in range(20)], keep_all)
        assert store.total_bytes() <= 10_000
        kept = [r.path for r in store.list("a", "e")]
        assert kept[-1] == "/19"
        assert kept == sorted(kept, key=lambda p: int(p[1:]))
        assert len(kept) < 20  # the oldest went first
        store.add([record(100 + n, size=1) for n in range(10)], {("a", "e"): Retention(3, 1e12)})
        assert [r.path for r in store.list("a", "e")] == ["/107", "/108", "/109"]
        store.add([record(200, size=1, at=0.0)], {("a", "e"): Retention(1000, 60)})
        assert store.list("a", "e") == []  # everything is older than a minute
        assert [r.path for r in store.list("a", "e", last=2)] == []
    finally:
        store.close()
    tables = sqlite3.connect(tmp_path / "db.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type='table'"
    )
    assert "recorded_requests" in {name for (name,) in tables}


def test_diffs_compare_json_as_values_and_name_binary_sizes() -> None:
    assert replay.diff(b'{"a": 1, "b": 2}', b'{"b": 2, "a": 1}') == ""
    text = replay.diff(b'{"answer": "yes"}', b'{"answer": "no"}')
    assert '-  "answer": "yes"' in text
    assert '+  "answer": "no"' in text
    assert replay.diff(b"\x00\x01", b"\x00\x02\x03") == (
        "binary bodies differ: 2 bytes before, 3 bytes after"
    )
    assert replay.percentile([0.1, 0.2, 0.3, 0.4], 50) == 0.2
    assert replay.percentile([0.1, 0.2, 0.3, 0.4], 95) == 0.4
    assert replay.percentile([], 50) is None


def test_a_replay_target_that_is_gone_fails_each_request_and_goes_on() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on any more
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    target = replay.Target("preview-gone", "v2", port)
    result = asyncio.run(
        replay.replay([record(1), record(2)], target, timeout=5.0, host="bot.localhost")
    )
    assert [item["failed"] for item in result["items"]] == [True, True]
    assert all(
        item["to"]["error"] == "connection refused: the agent in preview-gone is gone"
        for item in result["items"]
    )
    assert result["summary"]["failed"] == 2
    assert result["summary"]["to"] == {"p50": None, "p95": None}


def test_what_is_queued_at_shutdown_is_written(tmp_path: Path) -> None:
    """Stopping the controller (Tracing.shutdown) writes every record already queued."""
    policy = recording.Policy(model.RecordSettings(enabled=True))
    recorder = recording.Recorder(Recordings(tmp_path / "db.sqlite"), lambda *_: policy)
    traced = tracing.Tracing(None, inner=recorder)
    upstream = proxy.Upstream("bot", "production", "v1", 1)

    async def answer(_: Any, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"made", "more_body": False})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"make it", "more_body": False}

    async def send(_: Any) -> None:
        pass

    async def requests() -> None:
        for number in range(300):
            scope = {"type": "http", "method": "POST", "path": f"/items/{number}",
                     "query_string": b"", "headers": [(b"host", b"bot")]}  # fmt: skip
            await traced.traced(upstream, scope, receive, send, answer)

    asyncio.run(requests())
    traced.shutdown()  # at once: most records are still queued
    reopened = Recordings(tmp_path / "db.sqlite")
    try:
        kept = reopened.list("bot", "production")
    finally:
        reopened.close()
    assert [r.path for r in kept] == [f"/items/{number}" for number in range(300)]
    assert {(r.status, r.request_body, r.response_body) for r in kept} == {
        (201, b"make it", b"made")
    }
    assert all(len(r.trace_id) == 32 for r in kept)
