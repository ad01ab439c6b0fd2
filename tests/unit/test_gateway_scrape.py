"""Reading a gateway's request series: per-version counts, increases, counter resets."""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from controller.metrics import exposition
from controller.metrics.collector import Metrics
from controller.metrics.gateway_scrape import Counts, parse, readings_of, scrape

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


class _Gateways(BaseHTTPRequestHandler):
    """A gateway's /metrics as each path's pod answers it."""

    def do_GET(self) -> None:
        pod = self.headers["host"].split(":")[0]
        body, status = {
            "127.0.0.2": (_METRICS, 200),
            "127.0.0.3": (b"<html>an error page, not metrics {{{ ]]]\n", 200),
            "127.0.0.4": (b"broken", 500),
        }[pod]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


_METRICS, _ = exposition.render(Metrics(exports_state=False), None)


@pytest.fixture
def gateways() -> Iterator[int]:
    server = ThreadingHTTPServer(("0.0.0.0", 0), _Gateways)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _pod(uid: str, ip: str, port: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": f"gateway-{uid}"},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": port}]}]},
        "status": {"podIP": ip, "phase": phase},
    }


def test_pods_that_answer_badly_or_not_at_all_read_as_silent(gateways: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    pods = [
        _pod("good", "127.0.0.2", gateways),
        _pod("garbage", "127.0.0.3", gateways),
        _pod("failing", "127.0.0.4", gateways),
        _pod("gone", "127.0.0.5", closed),
        _pod("pending", "127.0.0.6", gateways, phase="Pending"),  # not scraped at all
    ]
    with httpx.Client(timeout=5) as http:
        scrapes = scrape(pods, http)
    assert [s.uid for s in scrapes] == ["good", "garbage", "failing", "gone"]
    assert "500" in scrapes[2].error
    assert scrapes[3].text is None
    assert scrapes[3].error
    readings = readings_of(scrapes)
    assert readings["good"] is not None
    assert {uid for uid, read in readings.items() if read is None} == {
        "garbage",
        "failing",
        "gone",
    }
