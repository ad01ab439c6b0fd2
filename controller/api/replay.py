"""Replay: recorded requests of one environment sent to another environment's version.

"How does the new version answer the same questions?" Each recorded request is sent, one
at a time, straight to the process serving the agent in the target environment (not
through the router, so replayed traffic is neither recorded nor counted as users'), and
its answer compared with the recorded one: statuses, bodies (JSON compared as values, so
key order and spacing do not count), latencies. Nothing here raises for an agent's
behaviour: a target that hangs, refuses or vanishes marks that request failed and the
replay goes on; a request whose body was cut at recording is not replayed at all, since
sending half a body would test something else.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from controller.store.recordings import Recorded

SHOWN_BODY_CHARACTERS = 4096
DIFF_LINES = 60
_READ_AT_LEAST = 64 * 1024
_NOT_REPLAYED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "traceparent",
        "tracestate",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    }
)


@dataclass(frozen=True)
class Target:
    """Where replayed requests go: the process serving the agent in `environment`."""

    environment: str
    version: str
    port: int


@dataclass(frozen=True)
class Answer:
    status: int | None
    body: bytes
    body_bytes: int  # how long it was in full (or as far as it was read)
    latency: float | None
    truncated: bool
    error: str | None = None


async def replay(
    records: Sequence[Recorded], target: Target, *, timeout: float, host: str
) -> dict[str, Any]:
    """`{"items": [...], "summary": {...}}` for `records` sent to `target`, in order."""
    items = []
    async with httpx.AsyncClient(
        trust_env=False,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
    ) as client:
        for record in records:
            if record.request_truncated:
                answer = Answer(
                    None,
                    b"",
                    0,
                    None,
                    False,
                    f"not replayed: the request body was cut at recording (kept "
                    f"{len(record.request_body)} of {record.request_bytes} bytes)",
                )
            else:
                answer = await _send(client, record, target, timeout, host)
            items.append(_item(record, target, answer))
    return {"items": items, "summary": summary(items)}


async def _send(
    client: httpx.AsyncClient, record: Recorded, target: Target, timeout: float, host: str
) -> Answer:
    url = f"http://127.0.0.1:{target.port}{record.path}"
    if record.query:
        url += "?" + record.query
    headers = [
        (name, value)
        for name, value in record.request_headers
        if name not in _NOT_REPLAYED and value != "[REDACTED]"
    ]
    headers += [("host", host), ("x-shipyard-replay", str(record.id))]
    # Read as much as was recorded (and a little more, to see a difference in length),
    # never an unbounded stream.
    limit = max(len(record.response_body) + 1, _READ_AT_LEAST)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request(
                record.method, url, headers=headers, content=record.request_body or None
            )
            response = await client.send(request, stream=True)
            try:
                kept = bytearray()
                total = 0
                truncated = False
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    kept += chunk[: max(limit - len(kept), 0)]
                    if total >= limit:
                        truncated = True
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return Answer(None, b"", 0, None, False, f"no answer within {timeout:g}s")
    except httpx.ConnectError:
        return Answer(
            None,
            b"",
            0,
            None,
            False,
            f"connection refused: the agent in {target.environment} is gone",
        )
    except httpx.HTTPError as error:
        return Answer(None, b"", 0, None, False, f"{type(error).__name__}: {error}")
    return Answer(
        response.status_code, bytes(kept), total, time.perf_counter() - started, truncated
    )


def _item(record: Recorded, target: Target, answer: Answer) -> dict[str, Any]:
    recorded_answer = Answer(
        record.status or None,
        record.response_body,
        record.response_bytes,
        record.latency,
        record.response_truncated,
        None if record.complete else "the recorded exchange broke off",
    )
    failed = answer.error is not None
    changed = not failed and (answer.status != record.status or not _same_body(record, answer))
    item: dict[str, Any] = {
        "request": {
            "id": record.id,
            "time": record.time,
            "method": record.method,
            "path": record.path,
            "query": record.query,
            "traceId": record.trace_id,
            "bodyBytes": record.request_bytes,
        },
        "from": _side(record.environment, record.version, recorded_answer),
        "to": _side(target.environment, target.version, answer),
        "changed": changed,
        "failed": failed,
    }
    if changed:
        item["diff"] = diff(record.response_body, answer.body)
    return item


def _side(environment: str, version: str, answer: Answer) -> dict[str, Any]:
    text = _text(answer.body)
    return {
        "environment": environment,
        "version": version,
        "status": answer.status,
        "latencySeconds": answer.latency,
        "bodyBytes": answer.body_bytes,
        "body": text[:SHOWN_BODY_CHARACTERS] if text is not None else None,
        "binary": text is None,
        "truncated": answer.truncated,
        "error": answer.error,
    }


def _same_body(record: Recorded, answer: Answer) -> bool:
    recorded, fresh = record.response_body, answer.body
    if record.response_truncated:
        # The recording kept a prefix only: compare as far as it goes.
        return fresh[: len(recorded)] == recorded
    if answer.truncated:
        return False  # longer than anything the recording could hold
    if recorded == fresh:
        return True
    try:
        return bool(json.loads(recorded) == json.loads(fresh))
    except ValueError:
        return False


def diff(before: bytes, after: bytes) -> str:
    """A unified diff of two bodies (JSON pretty-printed first), or what differs in binary."""
    old, new = _text(before), _text(after)
    if old is None or new is None:
        return (
            f"binary bodies differ: {len(before)} bytes before, {len(after)} bytes after"
            if before != after
            else ""
        )
    lines = list(
        difflib.unified_diff(
            _pretty(old).splitlines(), _pretty(new).splitlines(), "from", "to", lineterm="", n=2
        )
    )
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... {len(lines) - DIFF_LINES} more lines"]
    return "\n".join(lines)


def summary(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def latencies(side: str) -> list[float]:
        return sorted(
            item[side]["latencySeconds"]
            for item in items
            if item[side]["latencySeconds"] is not None
        )

    before, after = latencies("from"), latencies("to")
    return {
        "requests": len(items),
        "changed": sum(1 for item in items if item["changed"]),
        "failed": sum(1 for item in items if item["failed"]),
        "unchanged": sum(1 for item in items if not item["changed"] and not item["failed"]),
        "from": {"p50": percentile(before, 50), "p95": percentile(before, 95)},
        "to": {"p50": percentile(after, 50), "p95": percentile(after, 95)},
    }


def percentile(ordered: Sequence[float], rank: float) -> float | None:
    """Nearest-rank percentile of sorted values; None for none."""
    if not ordered:
        return None
    index = max(math.ceil(rank / 100 * len(ordered)) - 1, 0)
    return ordered[index]


def _text(body: bytes) -> str | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text
