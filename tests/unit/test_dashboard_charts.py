"""The agent page's traffic charts: rates, error rates and P95 from Shipyard's own
metrics registry (the real `Metrics` the router records into), drawn as SVG with the
same numbers in a table."""

from __future__ import annotations

import re

from controller.api.ui import charts, rates
from controller.metrics.collector import Metrics

T0 = 1_800_000_000.0


def _traffic(metrics: Metrics, version: str, ok: int, failed: int, seconds: float) -> None:
    for _ in range(ok):
        metrics.observe_request("alpha", "production", version, 200, seconds)
    for _ in range(failed):
        metrics.observe_request("alpha", "production", version, 503, seconds)


def test_each_interval_becomes_a_point_per_version_from_the_counters_growth() -> None:
    metrics = Metrics()
    history = rates.RateHistory(rates.registry_reader(metrics.registry), interval=10.0)
    _traffic(metrics, "v1", 50, 0, 0.02)  # before the first sample: not in any interval
    history.sample(T0)
    _traffic(metrics, "v1", 30, 10, 0.02)
    _traffic(metrics, "v2", 4, 0, 0.4)
    metrics.observe_request("beta", "production", "v9", 200, 0.01)  # another agent
    history.sample(T0 + 10)
    history.sample(T0 + 20)  # an idle interval keeps no point
    _traffic(metrics, "v2", 10, 0, 0.4)
    history.sample(T0 + 30)

    traffic = history.of("alpha", "production")
    assert traffic.times == (T0, T0 + 10, T0 + 20, T0 + 30)
    assert list(traffic.series) == ["v1", "v2"]
    (v1,) = traffic.series["v1"]
    assert (v1.time, v1.requests, v1.errors) == (T0 + 10, 40, 10)
    assert v1.rate == 4.0
    assert v1.error_ratio == 0.25
    assert v1.p95 is not None
    assert 0.01 <= v1.p95 <= 0.025  # inside the observations' bucket
    assert [p.requests for p in traffic.series["v2"]] == [4, 10]
    slow = traffic.series["v2"][1].p95
    assert slow is not None
    assert 0.25 <= slow <= 0.5


def test_old_points_age_out_with_the_window() -> None:
    metrics = Metrics()
    history = rates.RateHistory(rates.registry_reader(metrics.registry), interval=10.0, kept=3)
    history.sample(T0)
    _traffic(metrics, "v1", 5, 0, 0.02)
    history.sample(T0 + 10)
    for step in (2, 3, 4):
        history.sample(T0 + 10 * step)
    assert history.of("alpha", "production").series == {}


def test_quantile_interpolates_inside_the_bucket_as_promql_does() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert rates.quantile(0.5, buckets) == 0.1
    assert abs((rates.quantile(0.75, buckets) or 0) - 0.15) < 1e-9
    assert rates.quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert rates.quantile(0.99, {0.1: 0.0, float("inf"): 3.0}) == 0.1  # beyond the top bound


def test_the_charts_draw_a_line_per_version_and_say_the_numbers_in_text() -> None:
    metrics = Metrics()
    history = rates.RateHistory(rates.registry_reader(metrics.registry), interval=10.0)
    history.sample(T0)
    _traffic(metrics, "v1", 20, 0, 0.02)
    history.sample(T0 + 10)
    _traffic(metrics, "v1", 10, 0, 0.02)
    _traffic(metrics, "v2<b>", 5, 5, 0.3)
    history.sample(T0 + 20)
    _traffic(metrics, "v2<b>", 10, 0, 0.3)
    history.sample(T0 + 30)
    shown = charts.section(history.of("alpha", "production"))

    assert shown.count('role="img"') == 3
    assert len(re.findall(r"<polyline ", shown)) >= 4  # two versions in the rate chart at least
    assert "<b>" not in shown
    assert "v1: latest 0 req/s, highest 2 req/s" in shown  # v1 fell idle: its rate drops to 0
    assert "v2&lt;b&gt;: latest 0 %, highest 50 %" in shown
    rows = re.findall(r"<tr><td><time[^>]*>[^<]*</time></td>(.*?)</tr>", shown)
    assert len(rows) == 4  # one per interval with requests, per version
    assert "<td><code>v2&lt;b&gt;</code></td><td>10</td><td>1</td><td>50</td>" in shown


def test_without_traffic_the_section_says_so() -> None:
    history = rates.RateHistory(rates.registry_reader(Metrics().registry), interval=10.0)
    history.sample(T0)
    history.sample(T0 + 10)
    assert "No agent requests" in charts.section(history.of("alpha", "production"))


def test_several_sources_grow_apart_and_add_up() -> None:
    """Gateway replicas on a cluster: each one's counters grow (or reset) on their own."""
    pod_a, pod_b, pod_c = Metrics(), Metrics(), Metrics()
    readings: dict[str, list[object] | None] = {}
    history = rates.RateHistory(
        lambda: dict(readings), source="the gateways' metrics", interval=10.0
    )
    _traffic(pod_a, "v1", 100, 0, 0.02)  # before the first sample: counts for nothing
    readings.update({"a": list(pod_a.registry.collect()), "b": list(pod_b.registry.collect())})
    history.sample(T0)
    _traffic(pod_a, "v1", 10, 0, 0.02)
    _traffic(pod_b, "v1", 5, 5, 0.02)
    readings.update({"a": list(pod_a.registry.collect()), "b": list(pod_b.registry.collect())})
    history.sample(T0 + 10)
    # Pod a restarts (its counters start again), b does not answer this time (its requests
    # wait for its next answer), c is a new replica (all of its requests are new).
    pod_a = Metrics()
    _traffic(pod_a, "v1", 3, 0, 0.02)
    _traffic(pod_b, "v1", 7, 0, 0.02)
    _traffic(pod_c, "v1", 2, 0, 0.02)
    readings.update({"a": list(pod_a.registry.collect()), "b": None,
                     "c": list(pod_c.registry.collect())})  # fmt: skip
    history.sample(T0 + 20)
    readings["b"] = list(pod_b.registry.collect())
    history.sample(T0 + 30)

    traffic = history.of("alpha", "production")
    assert [(p.requests, p.errors) for p in traffic.series["v1"]] == [(20, 5), (5, 0), (7, 0)]
    assert traffic.source == "the gateways' metrics"
    assert "From the gateways&#x27; metrics" in charts.section(traffic)


def test_a_source_silent_before_its_first_answer_counts_from_that_answer() -> None:
    """A gateway replica that did not answer the first scrapes: its lifetime's counts are
    not one interval's traffic."""
    busy = Metrics()
    _traffic(busy, "v1", 500, 0, 0.02)
    readings: dict[str, list[object] | None] = {"a": None}
    history = rates.RateHistory(lambda: dict(readings), interval=10.0)
    history.sample(T0)
    history.sample(T0 + 10)
    readings["a"] = list(busy.registry.collect())
    history.sample(T0 + 20)  # its first answer: the baseline
    _traffic(busy, "v1", 7, 0, 0.02)
    readings["a"] = list(busy.registry.collect())
    history.sample(T0 + 30)
    assert [p.requests for p in history.of("alpha", "production").series["v1"]] == [7]
