"""Runs eval suites against running versions, off the reconcile loop's critical path.

Each (agent, version) is evaluated in a task of its own; all cases across all tasks share
one concurrency limit, every case has a deadline, answers are read only up to a bound,
and judging runs in a worker thread, so a hanging agent or a hostile answer never stalls
the controller. Results go to the store keyed by (agent, version, suite digest): a
version already evaluated by the same suite content is not run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from controller.specs import evalchecks
from controller.specs.evalsuites import Case, Suite
from controller.store.eval_results import CaseResult, EvalResults

log = logging.getLogger(__name__)
UNREACHED = "could not connect"  # a case that never reached the version

DEFAULT_CONCURRENCY = 4
DEFAULT_CASE_TIMEOUT = 30.0
# An answer is read up to this many bytes; the rest is never downloaded.
MAX_ANSWER_BYTES = evalchecks.MAX_JUDGED_BYTES


@dataclass(frozen=True)
class Endpoint:
    """Where a version answers: a base URL, and the Host header the router routes by."""

    base_url: str
    host: str | None = None

    @classmethod
    def through_router(cls, public_url: str, router_port: int) -> Endpoint:
        """A `*.localhost` preview URL reached on loopback, the way a browser would."""
        parts = urlsplit(public_url)
        hostname = parts.hostname or ""
        if hostname == "localhost" or hostname.endswith(".localhost"):
            return cls(f"http://127.0.0.1:{router_port}", parts.netloc)
        return cls(public_url.rstrip("/"))


class PodEndpoint(Protocol):
    """On Kubernetes: a ready pod's base URL (`http://podIP:containerPort`) for `version`
    of `agent`, the canary Deployment's or the stable one's; None while there is none."""

    def __call__(
        self, environment: str, agent: str, version: str, *, canary: bool
    ) -> str | None: ...


@dataclass(frozen=True)
class EvalRequest:
    """Evaluate `version` of `agent` (serving at `endpoint`) with `suites`."""

    agent: str
    version: str
    endpoint: Endpoint
    suites: tuple[Suite, ...]


class EvalRunner:
    def __init__(
        self,
        results: EvalResults,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        case_timeout: float = DEFAULT_CASE_TIMEOUT,
    ) -> None:
        self.results = results
        self.case_timeout = case_timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)

    def submit(self, request: EvalRequest) -> asyncio.Task[None]:
        """Start evaluating in the background (joining a run already under way)."""
        key = (request.agent, request.version)
        running = self._running.get(key)
        if running is not None and not running.done():
            return running
        task = asyncio.create_task(self._evaluate(request), name=f"eval {key}")
        self._running[key] = task
        return task

    async def wait_idle(self) -> None:
        while pending := [task for task in self._running.values() if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        await self._client.aclose()

    async def _evaluate(self, request: EvalRequest) -> None:
        try:
            await self.evaluate(request)
        except Exception:  # a bug here must not take the controller down with it
            log.exception("evaluating %s %s failed", request.agent, request.version)

    async def evaluate(self, request: EvalRequest) -> None:
        """Run every suite not yet evaluated on this version, and store its results."""
        for suite in self._due(request):
            outcomes = await asyncio.gather(
                *(self._case(request.endpoint, suite, case) for case in suite.cases)
            )
            results = [result for result, _ in outcomes]
            unreached = [result for result, reached in outcomes if not reached]
            if unreached:
                # Results are cached per version for good: "could not connect" says nothing
                # of how the version answers (a restart, a pod not yet routable), so the
                # suite is left unevaluated and runs again next time.
                log.warning(
                    "eval suite %s not stored for %s %s: %s",
                    suite.name,
                    request.agent,
                    request.version,
                    unreached[0].reason,
                )
                continue
            await asyncio.to_thread(
                self.results.save, request.agent, request.version, suite.digest, results
            )

    def _due(self, request: EvalRequest) -> Iterable[Suite]:
        for suite in request.suites:
            if not self.results.has(request.agent, request.version, suite.name, suite.digest):
                yield suite

    async def _case(self, endpoint: Endpoint, suite: Suite, case: Case) -> tuple[CaseResult, bool]:
        """How the case went, and whether it reached the version at all."""
        async with self._slots:
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(
                    self._send(endpoint, case), timeout=self.case_timeout
                )
            except TimeoutError:
                failure = f"no answer within {self.case_timeout:g} s"
                return CaseResult(suite.name, case.name, False, _elapsed_ms(started), failure), True
            except httpx.ConnectError as error:
                failure = f"{UNREACHED}: {error}"[:300]
                return CaseResult(
                    suite.name, case.name, False, _elapsed_ms(started), failure
                ), False
            except httpx.HTTPError as error:
                failure = f"request failed: {type(error).__name__}: {error}"[:300]
                return CaseResult(suite.name, case.name, False, _elapsed_ms(started), failure), True
            latency = _elapsed_ms(started)
        answer = evalchecks.Answer(status, body, latency)
        reason: str | None = await asyncio.to_thread(evalchecks.judge, case.expect, answer)
        return CaseResult(suite.name, case.name, reason is None, latency, reason or ""), True

    async def _send(self, endpoint: Endpoint, case: Case) -> tuple[int, bytes]:
        headers = dict(case.headers)
        if endpoint.host is not None:
            headers["Host"] = endpoint.host
        if case.content_type is not None:
            headers.setdefault("Content-Type", case.content_type)
        request = self._client.build_request(
            case.method, endpoint.base_url + case.path, headers=headers, content=case.body
        )
        response = await self._client.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) >= MAX_ANSWER_BYTES:
                    break
            return response.status_code, bytes(body[:MAX_ANSWER_BYTES])
        finally:
            await response.aclose()


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
