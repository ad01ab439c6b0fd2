"""Per-version request rate, error rate and latency over the last minutes, for the charts.

Read from Shipyard's own Prometheus registry (the series `/metrics` exports, which the
router records into), sampled every `interval` seconds by one task: each sample turns the
counters' growth since the one before into a point per version (requests per second, the
share answered 5xx, the P95 latency estimated from the histogram's buckets as PromQL's
`histogram_quantile` does). Only intervals with requests are kept per version; an idle
interval is a zero, known from the shared list of sample times, so idle agents cost
nothing. A retired version keeps its points until they age out, so a chart after a
rollout still shows the version before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from controller.metrics.state import bounded

REQUESTS = "shipyard_agent_requests"
DURATIONS = "shipyard_agent_request_duration_seconds"
INTERVAL_SECONDS = 15.0
KEPT_SAMPLES = 60  # 15 minutes at the default interval

VersionKey = tuple[str, str, str]  # agent, environment (as labelled), version
log = logging.getLogger("shipyard")


@dataclass(frozen=True)
class Point:
    """One interval's traffic to one version, ending at `time`."""

    time: float
    seconds: float  # the interval's length
    requests: float
    errors: float
    p95: float | None  # None when the interval had no requests

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Traffic:
    """One agent's charts' data: each version's points and the window's sample times."""

    series: dict[str, list[Point]]
    times: tuple[float, ...]
    interval: float


@dataclass
class _Totals:
    """A version's counters as last read: requests, 5xx answers, buckets (le → count)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


class RateHistory:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval: float = INTERVAL_SECONDS,
        kept: int = KEPT_SAMPLES,
    ) -> None:
        self.registry = registry
        self.interval = interval
        self.times: deque[float] = deque(maxlen=kept)
        self._totals: dict[VersionKey, _Totals] = {}
        self._points: dict[VersionKey, deque[Point]] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self, now: float | None = None) -> None:
        """Read the counters once and add a point per version that had requests."""
        now = time.time() if now is None else now
        previous_time = self.times[-1] if self.times else None
        current = _read(self.registry.collect())
        for key, totals in current.items():
            # A version first seen now counts from zero; at the very first sample
            # nothing is known of the interval before, so nothing counts.
            before = self._totals.get(key) or (totals if previous_time is None else _Totals())
            requests = _growth(totals.requests, before.requests)
            if requests <= 0:
                continue
            errors = min(requests, _growth(totals.errors, before.errors))
            buckets = {
                le: _growth(count, before.buckets.get(le, 0.0))
                for le, count in totals.buckets.items()
            }
            seconds = now - previous_time if previous_time is not None else self.interval
            points = self._points.setdefault(key, deque(maxlen=self.times.maxlen))
            points.append(Point(now, seconds, requests, errors, quantile(0.95, buckets)))
        self._totals = current
        self.times.append(now)
        oldest = self.times[0]
        for key in [key for key, points in self._points.items() if points[-1].time < oldest]:
            del self._points[key]

    def of(self, agent: str, environment: str) -> Traffic:
        """Each version's points for one agent, oldest first, versions by first traffic."""
        environment = bounded(environment)
        found = {
            key[2]: list(points)
            for key, points in self._points.items()
            if key[0] == agent and key[1] == environment
        }
        ordered = dict(sorted(found.items(), key=lambda item: item[1][0].time))
        return Traffic(ordered, tuple(self.times), self.interval)

    def start(self) -> None:
        """Begin sampling on the running event loop (once; no loop, no start)."""
        if self._task is not None and not self._task.done():
            return
        with contextlib.suppress(RuntimeError):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as error:  # a chart with a gap beats a sampler that stops
                log.warning("dashboard: reading the metrics for the charts failed: %s", error)
            await asyncio.sleep(self.interval)


def _growth(now: float, before: float) -> float:
    """A counter's growth; a counter that went back was reset (its series re-made)."""
    return now - before if now >= before else now


def _read(families: Iterable[object]) -> dict[VersionKey, _Totals]:
    totals: dict[VersionKey, _Totals] = {}
    for family in families:
        name = getattr(family, "name", "")
        if name not in (REQUESTS, DURATIONS):
            continue
        for sample in getattr(family, "samples", ()):
            labels = sample.labels
            key = (
                labels.get("agent", ""),
                labels.get("environment", ""),
                labels.get("version", ""),
            )
            if sample.name == f"{REQUESTS}_total":
                entry = totals.setdefault(key, _Totals())
                entry.requests += sample.value
                if labels.get("code", "").startswith("5"):
                    entry.errors += sample.value
            elif sample.name == f"{DURATIONS}_bucket":
                totals.setdefault(key, _Totals()).buckets[float(labels["le"])] = sample.value
    return totals


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile from cumulative bucket counts, interpolated linearly inside the
    bucket it falls in (PromQL's `histogram_quantile`); the top finite bound when it
    falls in +Inf; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower
