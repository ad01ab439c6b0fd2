"""Reading a gateway's request series: per-version counts, increases, counter resets."""

from __future__ import annotations

import math

from controller.metrics import exposition
from controller.metrics.collector import Metrics
from controller.metrics.gateway_scrape import Counts, parse

CANARY = ("alpha", "production", "v2")


def scraped(metrics: Metrics) -> Counts:
    body, _ = exposition.render(metrics, None)
    return parse(body.decode(), [CANARY]).get(CANARY, Counts())


def test_the_watched_versions_codes_and_buckets_are_read_and_others_ignored() -> None:
    gateway = Metrics(exports_state=False)
    gateway.observe_request("alpha", "production", "v2", 200, 0.003)
    gateway.observe_request("alpha", "production", "v2", 503, 0.2)
    gateway.observe_request("alpha", "production", "v1", 500, 0.2)  # the stable: not watched
    counts = scraped(gateway)
    assert counts.errors() == 1
    assert counts.durations() == [0.005, 0.25]  # each at its bucket's upper bound


def test_the_increase_since_the_last_scrape_and_after_a_restart() -> None:
    gateway = Metrics(exports_state=False)
    for _ in range(3):
        gateway.observe_request("alpha", "production", "v2", 200, 0.003)
    first = scraped(gateway)
    gateway.observe_request("alpha", "production", "v2", 500, 0.7)
    increase = scraped(gateway).since(first)
    assert (increase.errors(), increase.durations()) == (1, [1.0])

    restarted = Metrics(exports_state=False)  # a new gateway process: counters from zero
    restarted.observe_request("alpha", "production", "v2", 500, 200.0)
    after_restart = scraped(restarted).since(scraped(gateway))
    assert after_restart.errors() == 1
    assert after_restart.durations() == [math.inf]  # beyond the largest bucket
