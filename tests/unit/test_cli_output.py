"""The CLI's pure parts: label selectors, folded events, manifest diffs, rollout verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from controller.cli import describing, labels, printers, rollout_command
from controller.errors import ShipyardError
from controller.specs import manifest_diff

SUPPORT = {"team": "support", "tier": "frontline"}
BILLING = {"team": "billing"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param("", [SUPPORT, BILLING, BARE], id="empty"),
        pytest.param("team=support", [SUPPORT], id="equals"),
        pytest.param("team==support", [SUPPORT], id="double-equals"),
        pytest.param("team!=support", [BILLING, BARE], id="not-equals-matches-absent"),
        pytest.param("team", [SUPPORT, BILLING], id="exists"),
        pytest.param("!team", [BARE], id="absent"),
        pytest.param("team in (support, billing)", [SUPPORT, BILLING], id="in"),
        pytest.param("team notin (support)", [BILLING, BARE], id="notin"),
        pytest.param("team=support,tier=frontline", [SUPPORT], id="and"),
        pytest.param("team in (support,billing),!tier", [BILLING], id="set-then-absent"),
    ],
)
def test_selectors(selector: str, matches: list[dict[str, str]]) -> None:
    match = labels.parse(selector)
    assert [item for item in (SUPPORT, BILLING, BARE) if match(item)] == matches


def test_an_empty_value_is_a_value() -> None:
    assert labels.parse("team=")({"team": ""})
    assert not labels.parse("team=")(BARE)


@pytest.mark.parametrize("selector", ["=x", "team in (a", "team in ()", "a,,b", "t~x"])
def test_bad_selectors_are_errors(selector: str) -> None:
    with pytest.raises(ShipyardError):
        labels.parse(selector)


def test_tables_pad_like_kubectl() -> None:
    lines = printers.table(("name", "ready"), [["alpha", True], ["b", None]])
    assert lines == ["NAME    READY", "alpha   True", "b       <none>"]
    assert printers.table(("NAME",), [["x"]], no_headers=True) == ["x"]


def _event(when: float, reason: str, message: str, kind: str = "Normal") -> dict[str, Any]:
    return {"id": int(when), "time": when, "type": kind, "reason": reason, "message": message}


def test_repeated_events_fold_with_count_and_first_age() -> None:
    now = 10_000.0
    events = [
        _event(now - 600, "Paused", "paused by ann"),
        _event(now - 300, "Resumed", "resumed by ann"),
        *(_event(now - 600 + 100 * i, "Probe", "unhealthy", "Warning") for i in range(5)),
        _event(now - 120, "Paused", "paused by ann"),
    ]
    lines = describing.events_table(events, now)
    assert lines[0].split() == ["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]
    assert lines[1].split() == ["----", "------", "---", "----", "-------"]
    body = [" ".join(line.split()) for line in lines[2:]]
    assert body == [
        "Normal Resumed 5m shipyard-controller resumed by ann",
        "Warning Probe 3m20s (x5 over 10m) shipyard-controller unhealthy",
        "Normal Paused 2m (x2 over 10m) shipyard-controller paused by ann",
    ]


def _manifest(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"provider": "fake", "name": "echo", "parameters": {"temperature": 0.2}},
        "prompt": {"system": "You are a."},
        "tools": [{"name": "calc", "url": "https://calc"}, {"name": "web", "url": "https://w"}],
    }
    base.update(spec)
    return {"apiVersion": "shipyard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "a"},
            "spec": base}  # fmt: skip


def test_manifest_diff_names_every_changed_field() -> None:
    after = _manifest(
        model={"provider": "fake", "name": "echo-2", "parameters": {"temperature": 0.7}},
        prompt={"system": "You are a.\nBe kind."},
        tools=[{"name": "web", "url": "https://w2"}, {"name": "search", "url": "https://s"}],
        resources={"limits": {"memory": "512Mi"}},
    )
    diff = manifest_diff.compare("a", _manifest(), after, labels=("main", "feature"))
    assert [change.render() for change in diff.fields] == [
        "spec.model.name: echo → echo-2",
        "spec.model.parameters.temperature: 0.2 → 0.7",
        "spec.tools[web].url: https://w → https://w2",
        "spec.resources.limits.memory: <none> → 512Mi",
    ]
    assert (diff.tools_added, diff.tools_removed) == (["search"], ["calc"])
    assert diff.prompt == [
        "--- main:spec.prompt.system",
        "+++ feature:spec.prompt.system",
        "@@ -1 +1,2 @@",
        " You are a.",
        "+Be kind.",
    ]


def test_reordered_tools_are_no_change() -> None:
    before = _manifest()
    after = _manifest(tools=list(reversed(before["spec"]["tools"])))
    assert manifest_diff.compare("a", before, after).empty


def _rollout(result: str, to: str = "v2", reason: str = "") -> dict[str, Any]:
    return {"from_version": "v1", "to_version": to, "result": result, "reason": reason}


@pytest.mark.parametrize(
    ("state", "serving", "rollouts", "code"),
    [
        pytest.param("Healthy", "v2", [_rollout("Healthy")], 0, id="healthy"),
        pytest.param("Pinned", "v1", [_rollout("Healthy", "v1")], 0, id="pinned"),
        pytest.param("Progressing", "v1", [_rollout("Progressing")], None, id="progressing"),
        pytest.param("Progressing", "v1", [_rollout("Healthy", "v1")], None, id="not-started"),
        pytest.param("Failed", "v1", [_rollout("RolledBack", reason="crash")], 2, id="rolled-back"),
        pytest.param("Failed", None, [_rollout("Failed", reason="crash")], 2, id="failed"),
        pytest.param("Failed", None, [], 2, id="not-launchable"),
        pytest.param(
            "CrashLoopBackOff", "v2", [_rollout("Healthy")], None, id="rolled-out-but-crashing"
        ),
    ],
)
def test_rollout_verdicts(
    state: str, serving: str | None, rollouts: list[dict[str, Any]], code: int | None
) -> None:
    agent = {"state": state, "version": serving, "desiredVersion": "v2", "message": "m"}
    assert rollout_command.verdict("a", agent, rollouts).code == code


def test_rollout_status_of_a_crash_looping_agent_says_why_it_waits() -> None:
    agent = {
        "state": "CrashLoopBackOff",
        "version": "v2",
        "desiredVersion": "v2",
        "message": "back-off 8s restarting failed agent; last exit: exited with code 3",
    }
    verdict = rollout_command.verdict("a", agent, [_rollout("Healthy")])
    assert verdict.code is None
    assert verdict.message == (
        'Waiting for agent "a": v2 is CrashLoopBackOff: back-off 8s restarting failed agent; '
        "last exit: exited with code 3..."
    )
