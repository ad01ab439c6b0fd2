"""The planner: the minimal set of moves, never one for an unchanged agent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.reconciler import planner
from controller.specs.model import Agent, AgentSpec, ModelSpec, PromptSpec


def agent(name: str, version: str) -> Agent:
    spec = AgentSpec(name=name, model=ModelSpec("fake", "m"), prompt=PromptSpec("p"))
    return Agent(spec=spec, version=version, file=f"agents/{name}.yaml", line=1, manifest={})


def test_first_sync_deploys_everything_in_name_order() -> None:
    actions = planner.plan({"b": agent("b", "v1"), "a": agent("a", "v1")}, {})
    assert [(type(a).__name__, a.agent.name) for a in actions if isinstance(a, planner.Deploy)] == [
        ("Deploy", "a"),
        ("Deploy", "b"),
    ]


def test_unchanged_agents_cost_nothing() -> None:
    desired = {"a": agent("a", "v1"), "b": agent("b", "v2")}
    assert planner.plan(desired, {"a": "v1", "b": "v1"}) == [planner.Deploy(desired["b"], "v1")]


def test_agents_no_longer_declared_are_removed() -> None:
    assert planner.plan({}, {"gone": "v9"}) == [planner.Remove("gone", "v9")]


def test_failed_versions_wait_for_a_new_commit() -> None:
    desired = {"a": agent("a", "v2")}
    assert planner.plan(desired, {"a": "v1"}, failed={"a": "v2"}) == []
    newer = {"a": agent("a", "v3")}
    assert planner.plan(newer, {"a": "v1"}, failed={"a": "v2"}) == [
        planner.Deploy(newer["a"], "v1")
    ]


def test_pinned_agents_are_left_alone() -> None:
    desired = {"a": agent("a", "v2")}
    assert planner.plan(desired, {"a": "v1", "b": "v1"}, pinned={"a": "v1", "b": "v1"}) == []


NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
VERSIONS = st.sampled_from(["v1", "v2", "v3"])


@given(st.dictionaries(NAMES, VERSIONS), st.dictionaries(NAMES, VERSIONS))
def test_applying_the_plan_reaches_the_desired_state(
    wanted: dict[str, str], running: dict[str, str]
) -> None:
    desired = {name: agent(name, version) for name, version in wanted.items()}
    actions = planner.plan(desired, running)
    after = dict(running)
    for action in actions:
        if isinstance(action, planner.Deploy):
            assert running.get(action.agent.name) != action.agent.version
            after[action.agent.name] = action.agent.version
        else:
            del after[action.agent]
    assert after == wanted
    changed = {name for name in set(wanted) | set(running) if wanted.get(name) != running.get(name)}
    assert len(actions) == len(changed)
