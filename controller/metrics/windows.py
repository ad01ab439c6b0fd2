"""Request samples of the versions under analysis, for judging a canary every interval.

The router records every request into the Prometheus series; the versions a canary
analysis watches are also kept here, exactly (status and duration of each request of the
current interval), so the error rate and P95 are the interval's own and not bucket
estimates. Unwatched versions cost one dictionary lookup per request.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

VersionKey = tuple[str, str, str]  # agent, environment, version
MAX_SAMPLES = 100_000  # per version and interval: a bound, far above what an interval needs


@dataclass(frozen=True)
class Sample:
    """One interval's requests to one version."""

    requests: int
    errors: int  # 5xx answers
    durations: tuple[float, ...] = field(repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def latency_p95(self) -> float:
        if not self.durations:
            return 0.0
        ordered = sorted(self.durations)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class RequestWindows:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[VersionKey, tuple[list[int], list[float]]] = {}

    def watch(self, key: VersionKey) -> None:
        with self._lock:
            self._watched.setdefault(key, ([0, 0], []))

    def unwatch(self, key: VersionKey) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def record(self, key: VersionKey, code: int, seconds: float) -> None:
        window = self._watched.get(key)
        if window is None:
            return
        with self._lock:
            counts, durations = window
            counts[0] += 1
            if code >= 500:
                counts[1] += 1
            if len(durations) < MAX_SAMPLES:
                durations.append(seconds)

    def take(self, key: VersionKey) -> Sample:
        """The requests since the last `take` (or `watch`), and a fresh interval."""
        with self._lock:
            counts, durations = self._watched.get(key, ([0, 0], []))
            sample = Sample(counts[0], counts[1], tuple(durations))
            if key in self._watched:
                self._watched[key] = ([0, 0], [])
            return sample
