"""Judging a canary by PromQL: each query's result against its `successCondition`.

Queries go to the controller's `--prometheus-url` (its HTTP API, `/api/v1/query`) with
the canary's names filled in. What Prometheus cannot answer yet (no series, NaN) is
Inconclusive, as too few requests are for the built-in checks: the rollout holds and
says so. A query that errors is Inconclusive too, until it has failed
`ERROR_LIMIT` times in a row (Argo Rollouts' consecutiveErrorLimit): then it Fails, since
a canary nobody can judge must not hold, or pass, for ever.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from controller.reconciler.canary_analysis import Result, Verdict
from controller.specs.model import PrometheusCheck

ERROR_LIMIT = 4
QUERY_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 1 << 20
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class QueryError(Exception):
    """Prometheus did not answer the query with a number we can judge."""


class Prometheus:
    """A client of one Prometheus server's query API."""

    def __init__(self, url: str, *, timeout: float = QUERY_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    async def values(self, query: str) -> list[float]:
        """The query's instant result as numbers: one per series (a scalar is one)."""
        try:
            async with self._client.stream(
                "GET", f"{self.url}/api/v1/query", params={"query": query}
            ) as response:
                body = await _read_bounded(response)
        except httpx.HTTPError as error:
            raise QueryError(f"{type(error).__name__}: {error}") from error
        return _numbers(body)

    async def close(self) -> None:
        await self._client.aclose()


@dataclass
class QueryJudge:
    """The queries of one analysis, with their runs of errors."""

    checks: tuple[PrometheusCheck, ...]
    errors: dict[str, int] = field(default_factory=dict)

    async def judge(self, prometheus: Prometheus | None, variables: Mapping[str, str]) -> Verdict:
        if prometheus is None:
            return Verdict(
                Result.FAILED,
                "prometheus queries need the controller's --prometheus-url, which is not set",
            )
        verdicts = [await self._one(prometheus, check, variables) for check in self.checks]
        return combine(verdicts)

    async def _one(
        self, prometheus: Prometheus, check: PrometheusCheck, variables: Mapping[str, str]
    ) -> Verdict:
        try:
            values = await prometheus.values(render(check.query, variables))
        except QueryError as error:
            count = self.errors[check.name] = self.errors.get(check.name, 0) + 1
            message = f"{check.name}: query failed ({count}/{ERROR_LIMIT} in a row): {error}"
            return Verdict(Result.FAILED if count >= ERROR_LIMIT else Result.INCONCLUSIVE, message)
        self.errors.pop(check.name, None)
        shown = ", ".join(f"{value:.4g}" for value in values[:5])
        if not values or any(math.isnan(value) for value in values):
            return Verdict(
                Result.INCONCLUSIVE, f"{check.name}: no data yet ({shown or 'empty'}): holding"
            )
        compare = _COMPARE[check.operator]
        met = all(compare(value, check.threshold) for value in values)
        line = f"{check.name} {shown} ({check.condition})"
        return Verdict(Result.PASSED if met else Result.FAILED, line)


def render(query: str, variables: Mapping[str, str]) -> str:
    """`query` with each {{name}} (spaces allowed inside the braces) filled in."""
    return _PLACEHOLDER.sub(lambda found: variables.get(found.group(1), found.group(0)), query)


def combine(verdicts: list[Verdict]) -> Verdict:
    """Failed if any failed, else Inconclusive if any was, else Passed; messages joined."""
    for result in (Result.FAILED, Result.INCONCLUSIVE):
        chosen = [verdict.message for verdict in verdicts if verdict.result is result]
        if chosen:
            return Verdict(result, "; ".join(chosen))
    return Verdict(Result.PASSED, "; ".join(verdict.message for verdict in verdicts))


async def _read_bounded(response: httpx.Response) -> bytes:
    if response.status_code != httpx.codes.OK:
        text = (await response.aread())[:300].decode("utf-8", "replace")
        raise QueryError(f"HTTP {response.status_code}: {text}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise QueryError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _numbers(body: bytes) -> list[float]:
    try:
        decoded: Any = json.loads(body)
        if decoded.get("status") != "success":
            raise QueryError(f"{decoded.get('errorType')}: {decoded.get('error')}")
        data = decoded["data"]
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return [float(result[1])]
        if kind == "vector":
            return [float(sample["value"][1]) for sample in result]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise QueryError(f"unreadable answer: {type(error).__name__}: {error}") from error
    raise QueryError(f"the query gives a {kind}; it must give a scalar or an instant vector")
