"""Request samples of the versions under analysis, for judging a canary every interval.

The router records every request into the Prometheus series; the versions a canary
analysis watches are also kept here, exactly (status and duration of each request of the
current interval), so the error rate and P95 are the interval's own and not bucket
estimates. Unwatched versions cost one dictionary lookup per request.

On a cluster the requests pass through `shipyard gateway`, not this process: the
controller scrapes the gateways' series and adds each interval's increase here
(`gateway_scrape`), durations then known to their histogram bucket. When it cannot see
the requests (no gateway answers), it says so (`blind`), and the verdict carries why.
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
    blind: str = ""  # why requests may be missing (a gateway that did not answer); "" if none

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
        self._blind = ""

    def watch(self, key: VersionKey) -> None:
        with self._lock:
            self._watched.setdefault(key, ([0, 0], []))

    def unwatch(self, key: VersionKey) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def watched(self) -> list[VersionKey]:
        with self._lock:
            return list(self._watched)

    def set_blind(self, reason: str) -> None:
        """Why the requests recorded now may be incomplete ("" once they are not)."""
        self._blind = reason

    def add(self, key: VersionKey, errors: int, durations: list[float]) -> None:
        """Several requests at once (`len(durations)` of them, `errors` answered 5xx)."""
        with self._lock:
            window = self._watched.get(key)
            if window is None:
                return
            counts, kept = window
            counts[0] += len(durations)
            counts[1] += errors
            kept.extend(durations[: max(0, MAX_SAMPLES - len(kept))])

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
            sample = Sample(counts[0], counts[1], tuple(durations), self._blind)
            if key in self._watched:
                self._watched[key] = ([0, 0], [])
            return sample
