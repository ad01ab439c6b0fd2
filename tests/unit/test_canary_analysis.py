"""Judging a canary's interval: too few requests holds, each check fails on its own."""

from __future__ import annotations

from controller.metrics.windows import RequestWindows, Sample
from controller.reconciler.canary_analysis import Result, judge, merged
from controller.specs.model import Analysis

CHECKS = Analysis(interval_seconds=10, min_requests=20, max_error_rate=0.05,
                  max_latency_p95_seconds=2.0)  # fmt: skip


def sample(requests: int, errors: int = 0, seconds: float = 0.1) -> Sample:
    return Sample(requests, errors, (seconds,) * requests)


def test_too_few_requests_is_inconclusive_and_says_so() -> None:
    verdict = judge(CHECKS, sample(5, errors=5))
    assert verdict.result is Result.INCONCLUSIVE
    assert "5 of 20 requests" in verdict.message


def test_error_rate_and_latency_fail_on_their_own() -> None:
    assert judge(CHECKS, sample(100, errors=4)).result is Result.PASSED
    failed = judge(CHECKS, sample(100, errors=6))
    assert failed.result is Result.FAILED
    assert "errorRate 0.060" in failed.message
    slow = judge(CHECKS, Sample(100, 0, (0.1,) * 90 + (3.0,) * 10))
    assert slow.result is Result.FAILED
    assert "latencyP95 3.000s" in slow.message
    fast_enough = Sample(100, 0, (0.1,) * 95 + (3.0,) * 5)
    assert judge(CHECKS, fast_enough).result is Result.PASSED


def test_an_inconclusive_interval_carries_over() -> None:
    assert judge(CHECKS, merged(sample(10), sample(10))).result is Result.PASSED


def test_windows_keep_only_watched_versions_and_reset_on_take() -> None:
    windows = RequestWindows()
    canary = ("alpha", "production", "v2")
    windows.record(canary, 500, 0.1)  # not watched yet: not kept
    windows.watch(canary)
    windows.record(canary, 200, 0.2)
    windows.record(canary, 503, 0.3)
    windows.record(("alpha", "production", "v1"), 500, 0.1)
    taken = windows.take(canary)
    assert (taken.requests, taken.errors, taken.durations) == (2, 1, (0.2, 0.3))
    assert windows.take(canary).requests == 0
