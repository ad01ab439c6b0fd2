"""Judging a canary from one interval's requests: Passed, Failed or Inconclusive.

Too few requests is inconclusive, neither pass nor fail: the rollout holds and says so
(DESIGN.md §10), and the requests carry over into the next interval until enough arrive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from controller.metrics.windows import Sample
from controller.specs.model import Analysis


class Result(enum.StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Verdict:
    result: Result
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"result": self.result.value, "message": self.message}


def judge(analysis: Analysis, sample: Sample) -> Verdict:
    if sample.requests < analysis.min_requests:
        unseen = f" ({sample.blind})" if sample.blind else ""
        return Verdict(
            Result.INCONCLUSIVE,
            f"{sample.requests} of {analysis.min_requests} requests needed: holding{unseen}",
        )
    failures: list[str] = []
    passes: list[str] = []
    if analysis.max_error_rate is not None:
        line = (
            f"errorRate {sample.error_rate:.3f} (max {analysis.max_error_rate:g}, "
            f"{sample.errors}/{sample.requests} 5xx)"
        )
        (failures if sample.error_rate > analysis.max_error_rate else passes).append(line)
    if analysis.max_latency_p95_seconds is not None:
        line = f"latencyP95 {sample.latency_p95:.3f}s (max {analysis.max_latency_p95_seconds:g}s)"
        too_slow = sample.latency_p95 > analysis.max_latency_p95_seconds
        (failures if too_slow else passes).append(line)
    if failures:
        return Verdict(Result.FAILED, "; ".join(failures))
    return Verdict(Result.PASSED, "; ".join(passes))


def merged(earlier: Sample, later: Sample) -> Sample:
    """Two intervals' requests as one (an inconclusive interval carries over)."""
    return Sample(
        earlier.requests + later.requests,
        earlier.errors + later.errors,
        earlier.durations + later.durations,
        later.blind,
    )
