"""Per-version request rate, error rate and latency over the last minutes, for the charts.

Read from where agent requests are counted: on the local target Shipyard's own Prometheus
registry (the series `/metrics` exports, which the router records into); on Kubernetes
each `shipyard gateway` pod's `/metrics`, since agent traffic passes the gateways, not the
controller. Sampled every `interval` seconds by one task (reading off the event loop):
each sample turns the counters' growth since the one before into a point per version
(requests per second, the share answered 5xx, the P95 latency estimated from the
histogram's buckets as PromQL's `histogram_quantile` does). Growth is taken per source
(per gateway pod) and then summed, so a restarted replica's reset counters or a new
replica's first ones count as what they are. Only intervals with requests are kept per
version; an idle interval is a zero, known from the shared list of sample times, so idle
agents cost nothing. A retired version keeps its points until they age out, so a chart
after a rollout still shows the version before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from controller.metrics.state import bounded

REQUESTS = "shipyard_agent_requests"
DURATIONS = "shipyard_agent_request_duration_seconds"
INTERVAL_SECONDS = 15.0
KEPT_SAMPLES = 60  # 15 minutes at the default interval

VersionKey = tuple[str, str, str]  # agent, environment (as labelled), version
# Per source (a gateway pod; "" for the registry): its metric families as read now, or
# None when it did not answer (its counts are kept for when it does).
Readings = Mapping[str, Iterable[object] | None]
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
    source: str = "Shipyard's own metrics"


@dataclass
class _Totals:
    """A version's counters as last read: requests, 5xx answers, buckets (le → count)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


def registry_reader(registry: CollectorRegistry) -> Callable[[], Readings]:
    """Readings of one process's own registry (the local target's router records there)."""
    return lambda: {"": list(registry.collect())}


class RateHistory:
    def __init__(
        self,
        read: Callable[[], Readings],
        *,
        source: str = "Shipyard's own metrics",
        interval: float = INTERVAL_SECONDS,
        kept: int = KEPT_SAMPLES,
    ) -> None:
        self.read = read
        self.source = source  # where the numbers come from, as the page says
        self.interval = interval
        self.times: deque[float] = deque(maxlen=kept)
        self._totals: dict[str, dict[VersionKey, _Totals]] = {}
        # Sources that were there but silent before their first answer: what they had by
        # then is not known to be new, so their first answer is a baseline, not growth.
        self._unbased: set[str] = set()
        self._points: dict[VersionKey, deque[Point]] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self, now: float | None = None, readings: Readings | None = None) -> None:
        """Read the counters once (or take `readings`) and add a point per version that
        had requests."""
        now = time.time() if now is None else now
        readings = self.read() if readings is None else readings
        previous_time = self.times[-1] if self.times else None
        grown: dict[VersionKey, _Totals] = {}
        totals_now: dict[str, dict[VersionKey, _Totals]] = {}
        for source, families in readings.items():
            earlier = self._totals.get(source)
            if families is None:  # silent this time: its counts wait for the next answer
                if earlier is not None:
                    totals_now[source] = earlier
                else:
                    self._unbased.add(source)
                continue
            current = totals_now[source] = totals_of(families)
            baseline = previous_time is None or (earlier is None and source in self._unbased)
            self._unbased.discard(source)
            for key, totals in current.items():
                # At the very first sample nothing is known of the interval before, so
                # nothing counts; after it a version or a source first seen counts from
                # zero (a new version, a new gateway replica).
                before = (earlier or {}).get(key) or (totals if baseline else _Totals())
                _add_growth(grown.setdefault(key, _Totals()), totals, before)
        for key, growth in grown.items():
            if growth.requests <= 0:
                continue
            errors = min(growth.requests, growth.errors)
            seconds = now - previous_time if previous_time is not None else self.interval
            points = self._points.setdefault(key, deque(maxlen=self.times.maxlen))
            points.append(
                Point(now, seconds, growth.requests, errors, quantile(0.95, growth.buckets))
            )
        self._totals = totals_now
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
        return Traffic(ordered, tuple(self.times), self.interval, self.source)

    def start(self) -> None:
        """Begin sampling on the running event loop (once; no loop, no start)."""
        if self._task is not None and not self._task.done():
            return
        with contextlib.suppress(RuntimeError):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                # Scraping gateways is network I/O: never on the event loop.
                self.sample(readings=await asyncio.to_thread(self.read))
            except Exception as error:  # a chart with a gap beats a sampler that stops
                log.warning("dashboard: reading the metrics for the charts failed: %s", error)
            await asyncio.sleep(self.interval)


def _growth(now: float, before: float) -> float:
    """A counter's growth; a counter that went back was reset (its series re-made)."""
    return now - before if now >= before else now


def _add_growth(into: _Totals, now: _Totals, before: _Totals) -> None:
    into.requests += _growth(now.requests, before.requests)
    into.errors += _growth(now.errors, before.errors)
    for le, count in now.buckets.items():
        into.buckets[le] = into.buckets.get(le, 0.0) + _growth(count, before.buckets.get(le, 0.0))


def totals_of(families: Iterable[object]) -> dict[VersionKey, _Totals]:
    """Each version's request counters in metric families (from a registry's `collect`
    or parsed from a `/metrics` text)."""
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
