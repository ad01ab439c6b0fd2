"""The real Prometheus server scrapes a running `shipyard serve` and answers PromQL.

A real git remote, a real controller with a production and a preview environment,
traffic through the built-in router, `promtool check metrics` on the exposition, and the
Debian `prometheus` binary scraping every second. Without the binary the tests skip
locally and fail in CI (where `.ci/test` installs it).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import promql
from tests.gitrepos import Upstream
from tests.integration.controller_harness import (
    Shipyard,
    manifest,
    preview_of,
    seed,
    wait_for,
)
from tests.integration.prometheus_server import Prometheus, binary

BRANCH = "feature/metrics"


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    seed(upstream, "alpha")
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.9)}, branch=BRANCH)
    upstream.push(BRANCH)
    running = Shipyard(upstream.bare, tmp_path / "state")
    try:
        yield running
    finally:
        running.close()


def both_serving(shipyard: Shipyard) -> tuple[str, str]:
    """The versions of alpha serving in production and in the preview, once both are up."""
    preview = preview_of(BRANCH)
    production_body = wait_for(lambda: shipyard.serving("alpha", "production"), what="production")
    preview_body = wait_for(lambda: shipyard.serving("alpha", preview), what="the preview")
    return production_body["version"], preview_body["version"]


def test_exposition_of_a_running_controller_passes_promtool(shipyard: Shipyard) -> None:
    promtool = binary("promtool")
    shipyard.start()
    both_serving(shipyard)
    for environment in ("production", preview_of(BRANCH)):
        assert shipyard.agent("alpha", environment, "/missing").status_code == 404
    exposition = shipyard.metrics()
    assert 'shipyard_agent_requests_total{agent="alpha",code="404"' in exposition
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


def test_prometheus_sees_versions_and_traffic_and_forgets_a_deleted_preview(
    shipyard: Shipyard, upstream: Upstream, tmp_path: Path
) -> None:
    prometheus = Prometheus(
        binary("prometheus"), tmp_path / "prometheus", f"127.0.0.1:{shipyard.port}"
    )
    try:
        shipyard.start()
        prometheus.wait_ready()
        scenario(shipyard, upstream, prometheus)
    finally:
        prometheus.close()


def scenario(shipyard: Shipyard, upstream: Upstream, prometheus: Prometheus) -> None:
    preview = preview_of(BRANCH)
    production_version, preview_version = both_serving(shipyard)
    assert production_version != preview_version
    main_sha = upstream.git("rev-parse", "main")
    branch_sha = upstream.git("rev-parse", BRANCH)

    # Version info for production and for the preview, with short commits and the branch.
    def version_info() -> list[dict[str, Any]] | None:
        found = prometheus.query('shipyard_agent_version_info{agent="alpha"}')
        return found if len(found) == 2 else None

    info = wait_for(version_info, what="version info for both environments")
    labels = {item["metric"]["environment"]: item["metric"] for item in info}
    assert labels["production"]["version"] == production_version
    assert labels["production"]["commit"] == main_sha[:12]
    assert labels["production"]["branch"] == "main"
    assert labels[preview]["version"] == preview_version
    assert labels[preview]["commit"] == branch_sha[:12]
    assert labels[preview]["branch"] == BRANCH

    # Requests through the router, counted per version and code.
    for _ in range(2):
        assert shipyard.agent("alpha", "production", "/missing").status_code == 404
    for _ in range(3):
        assert shipyard.agent("alpha", preview, "/missing").status_code == 404
        assert shipyard.agent("alpha", preview).status_code == 200
    missing = 'sum by (environment, version) (shipyard_agent_requests_total{code="404"})'
    expected = {
        (("environment", "production"), ("version", production_version)): 2.0,
        (("environment", preview), ("version", preview_version)): 3.0,
    }
    wait_for(lambda: prometheus.values(missing) == expected, what="404s counted per version")
    served = prometheus.values(
        f'shipyard_agent_requests_total{{environment="{preview}",code="200"}}'
    )
    (count,) = served.values()
    assert count >= 3
    # The info metric joins onto the traffic: requests per commit.
    joined = prometheus.values(
        "sum by (environment, commit) (shipyard_agent_requests_total"
        " * on (agent, environment, version) group_left (commit) shipyard_agent_version_info)"
    )
    commits = {dict(key)["environment"]: dict(key)["commit"] for key in joined}
    assert commits == {"production": main_sha[:12], preview: branch_sha[:12]}
    assert prometheus.values('shipyard_previews{state="Ready"}') != {}
    rollouts = prometheus.values(f'shipyard_rollouts_total{{environment="{preview}"}}')
    assert [dict(key)["result"] for key in rollouts] == ["Healthy"]
    live = prometheus.values('shipyard_commit_to_live_seconds_count{environment_kind="preview"}')
    assert list(live.values()) == [1.0]

    # Every PromQL expression we publish evaluates on the real server.
    for expression in published_expressions():
        prometheus.query(expression)

    # The branch goes; so do all of its series, while production's stay.
    upstream.push(f":{BRANCH}")
    wait_for(lambda: preview not in shipyard.environments(), what="the preview to go")
    assert preview not in shipyard.metrics()
    wait_for(
        lambda: prometheus.query(f'{{environment="{preview}"}}') == [],
        what="the preview's series to go stale",
    )
    remaining = prometheus.query("shipyard_agent_version_info")
    assert [item["metric"]["environment"] for item in remaining] == ["production"]
    wait_for(lambda: prometheus.query('shipyard_previews{state="Ready"} == 0'), what="no preview")


def published_expressions() -> list[str]:
    """Every PromQL expression in docs/metrics.md and the Grafana dashboard, made concrete."""
    concrete = []
    for expression in promql.docs_expressions() + promql.dashboard_expressions():
        windowed = expression.replace("$__rate_interval", "1m").replace("$__range", "5m")
        concrete.append(re.sub(r"\$\{?(\w+)\}?", ".*", windowed))
    return concrete


def test_metrics_need_a_read_token_once_tokens_are_set(upstream: Upstream, tmp_path: Path) -> None:
    seed(upstream, "alpha")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", "--read-token", "scrape-me")
    try:
        shipyard.start()
        assert shipyard.http.get(shipyard.api("/metrics")).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert shipyard.http.get(shipyard.api("/metrics"), headers=wrong).status_code == 401
        right = {"authorization": "Bearer scrape-me"}
        response = shipyard.http.get(shipyard.api("/metrics"), headers=right)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "shipyard_agent_version_info" in response.text
    finally:
        shipyard.close()
