"""What we publish about the metrics matches what we expose: the catalog, PromQL, manifests."""

from __future__ import annotations

import re

import pytest
import yaml

from tests import promql


def test_the_catalog_lists_exactly_the_exposed_metrics() -> None:
    _, families = promql.exposed()
    text = promql.DOCS.read_text(encoding="utf-8")
    catalog = set(re.findall(r"^\| `(shipyard_[a-z_]+)` \|", text, re.MULTILINE))
    assert catalog == {family for family in families if family.startswith("shipyard_")}
    # Besides ours, only the standard process collector, which the catalog names.
    others = {family for family in families if not family.startswith("shipyard_")}
    assert others
    assert all(family.startswith("process_") for family in others), others
    assert "process_*" in text


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        pytest.param("rate(x_total[5m])", {"x_total"}, id="range"),
        pytest.param('sum by (le) (a_bucket{code=~"5.."})', {"a_bucket"}, id="grouping"),
        pytest.param("a * on (agent) group_left (commit) b_info", {"a", "b_info"}, id="join"),
        pytest.param("histogram_quantile(0.95, c) > 1e3", {"c"}, id="numbers"),
        pytest.param("time() - d offset 5m", {"d"}, id="offset"),
    ],
)
def test_metric_names_are_read_out_of_promql(expression: str, names: set[str]) -> None:
    assert promql.metric_names(expression) == names


def test_docs_promql_uses_only_exposed_metric_names() -> None:
    samples, _ = promql.exposed()
    expressions = promql.docs_expressions()
    assert len(expressions) >= 3
    for expression in expressions:
        names = promql.metric_names(expression)
        assert names, expression
        assert names <= samples, (expression, names - samples)


def test_dashboard_parses_and_uses_only_exposed_metric_names() -> None:
    samples, _ = promql.exposed()
    board = promql.dashboard()
    assert board["title"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    expressions = promql.dashboard_expressions() + promql.dashboard_variable_queries()
    assert len(expressions) >= 8
    for expression in expressions:
        names = promql.metric_names(expression)
        assert names, expression
        assert names <= samples, (expression, names - samples)


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    text = " ".join(promql.dashboard_expressions())
    for needed in (
        "shipyard_agent_requests_total",
        'code=~"5.."',
        "shipyard_agent_request_duration_seconds_bucket",
        "shipyard_previews",
        "shipyard_commit_to_live_seconds_bucket",
    ):
        assert needed in text


def test_servicemonitor_scrapes_the_controllers_metrics_endpoint() -> None:
    # The first document; the second scrapes the gateway (test_install_manifests.py).
    document = next(
        yaml.safe_load_all((promql.ROOT / "manifests" / "servicemonitor.yaml").read_text())
    )
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "ServiceMonitor"
    (endpoint,) = document["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    labels = document["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/name"] == "shipyard"
