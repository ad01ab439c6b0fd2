"""PromQL we publish (docs/metrics.md, the Grafana dashboard) and the metric names it uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from controller.metrics import exposition
from controller.metrics.collector import Metrics
from controller.metrics.state import State, VersionInfo

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "metrics.md"
DASHBOARD = ROOT / "manifests" / "grafana-dashboard.json"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "inf", "nan"}
)


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects (functions, labels and keywords left out)."""
    text = _STRING.sub('""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery windows
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*", " ", text)  # numbers, durations
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def docs_expressions() -> list[str]:
    """Every ```promql block of docs/metrics.md, one expression each, comments dropped."""
    blocks = re.findall(r"```promql\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return [
        " ".join(line.strip() for line in block.splitlines() if not line.strip().startswith("#"))
        for block in blocks
    ]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def dashboard_expressions() -> list[str]:
    """The `expr` of every panel target in the Grafana dashboard."""
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def dashboard_variable_queries() -> list[str]:
    """The series selectors inside the dashboard's `label_values(...)` variable queries."""
    selectors = []
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if variable.get("type") != "query":
            continue
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text)
        assert match, f"unexpected variable query {text!r}"
        selectors.append(match.group(1))
    return selectors


def populated() -> Metrics:
    """A `Metrics` with one of everything recorded, so every series name is exposed."""
    info = VersionInfo("alpha", "production", "v1", "0" * 40, "main")
    metrics = Metrics()
    metrics.watch(
        lambda: State(
            versions=(info,),
            environments=frozenset({"production"}),
            agents=frozenset({("production", "alpha")}),
        )
    )
    metrics.observe_request("alpha", "production", "v1", 200, 0.1)
    metrics.rollout_finished("alpha", "production", "Healthy", 2.0)
    metrics.commit_live("production", 5.0)
    metrics.observe_phase("fetch", 0.1)
    metrics.git_fetch_failed()
    metrics.webhook_delivery("github", "accepted")
    metrics.synced("production", 1.0)
    return metrics


def exposed() -> tuple[set[str], set[str]]:
    """(sample names, family names as queried) of the full exposition."""
    body, _ = exposition.render(populated())
    families = list(text_string_to_metric_families(body.decode()))
    samples = {sample.name for family in families for sample in family.samples}
    queried = {
        family.name + "_total" if family.type == "counter" else family.name
        for family in families
        if not family.name.endswith("_created")
    }
    return samples, queried
