"""Checks of `spec.rollout`'s canary settings that a JSON Schema cannot express.

Weights must rise (a canary never gives traffic back mid-rollout; `abort` does that),
steps and analysis only mean something under `strategy: Canary`, and a canary needs
steps to walk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controller.specs.model import parse_duration

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_KNOWN = frozenset({"agent", "environment", "canary", "stable", "interval"})

Finding = tuple[tuple[str | int, ...], bool, str]


def check(rollout: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    strategy = rollout.get("strategy", "RollingUpdate")
    steps = rollout.get("steps", [])
    if strategy != "Canary":
        for name in ("steps", "analysis", "stickyHeader"):
            if name in rollout:
                findings.append(
                    (("spec", "rollout", name), False, f"{name} needs strategy: Canary")
                )
        return findings
    if not steps:
        findings.append(
            (("spec", "rollout", "steps"), False, "a Canary rollout needs steps (setWeight: N, …)")
        )
    previous = -1
    for index, step in enumerate(steps):
        weight = step.get("setWeight")
        if weight is not None:
            if weight <= previous:
                findings.append(
                    (
                        ("spec", "rollout", "steps", index, "setWeight"),
                        False,
                        f"weights must increase: {weight} follows {previous}",
                    )
                )
            previous = max(previous, weight)
        duration = (step.get("pause") or {}).get("duration")
        if duration is not None and parse_duration(duration) == 0:
            findings.append(
                (
                    ("spec", "rollout", "steps", index, "pause", "duration"),
                    False,
                    "a pause lasts longer than 0s (pause: {} waits for rollout promote)",
                )
            )
    for path, analysis in _analyses(rollout):
        if not any(check in analysis for check in ("errorRate", "latencyP95", "prometheus")):
            findings.append(
                (path, False, "an analysis needs a check: errorRate, latencyP95 or prometheus")
            )
        findings.extend(_query_findings(path, analysis.get("prometheus", [])))
        interval = analysis.get("interval")
        if interval is not None and parse_duration(interval) == 0:
            findings.append(((*path, "interval"), False, "an interval lasts longer than 0s"))
    return findings


def _query_findings(path: tuple[str | int, ...], queries: list[Mapping[str, Any]]) -> list[Finding]:
    """Unknown {{placeholders}} and repeated names, which PromQL would only see as text."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for index, query in enumerate(queries):
        name = query.get("name")
        if name in seen:
            findings.append(((*path, "prometheus", index, "name"), False, f"{name} is named twice"))
        seen.add(str(name))
        for unknown in sorted(set(_PLACEHOLDER.findall(str(query.get("query", "")))) - _KNOWN):
            findings.append(
                (
                    (*path, "prometheus", index, "query"),
                    False,
                    f"unknown placeholder {{{{{unknown}}}}} (known: "
                    + ", ".join(f"{{{{{known}}}}}" for known in sorted(_KNOWN))
                    + ")",
                )
            )
    return findings


def _analyses(
    rollout: Mapping[str, Any],
) -> list[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    found: list[tuple[tuple[str | int, ...], Mapping[str, Any]]] = []
    if "analysis" in rollout:
        found.append((("spec", "rollout", "analysis"), rollout["analysis"]))
    for index, step in enumerate(rollout.get("steps", [])):
        if "analysis" in step:
            found.append((("spec", "rollout", "steps", index, "analysis"), step["analysis"]))
    return found
