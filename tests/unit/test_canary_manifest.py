"""`spec.rollout.strategy: Canary`: steps and analysis in the manifest, checked and typed,
and versions that existed before canaries keep their hash."""

from __future__ import annotations

import pytest

from controller.specs import loading
from controller.specs.model import Analysis, CanaryStep
from controller.specs.tree import FilesystemTree
from tests.conftest import WriteRepo, agent_yaml

PROMPT = "You are a helpful support agent.\n"

CANARY = """\
  rollout:
    strategy: Canary
    stickyHeader: X-Conversation-Id
    steps:
      - setWeight: 20
      - pause: {duration: 30s}
      - setWeight: 50
      - analysis: {interval: 5s, minRequests: 50, latencyP95: {max: 500ms}}
      - pause: {}
    analysis:
      minRequests: 20
      errorRate: {max: 0.05}
      latencyP95: {max: 2s}
"""


def load(write_repo: WriteRepo, rollout: str) -> loading.LoadResult:
    root = write_repo({"agents/a.yaml": agent_yaml() + rollout, "prompts/support-bot.md": PROMPT})
    return loading.collect(FilesystemTree(root))


def problems(write_repo: WriteRepo, rollout: str) -> str:
    result = load(write_repo, rollout)
    assert not result.ok
    return "\n".join(problem.render() for problem in result.problems)


def test_a_canary_is_typed_with_its_steps_and_analysis(write_repo: WriteRepo) -> None:
    result = load(write_repo, CANARY)
    assert result.ok, [p.render() for p in result.problems]
    (agent,) = result.agents
    rollout = agent.spec.rollout
    assert rollout.is_canary
    assert rollout.sticky_header == "x-conversation-id"
    assert rollout.steps == (
        CanaryStep(set_weight=20),
        CanaryStep(pause=True, pause_seconds=30),
        CanaryStep(set_weight=50),
        CanaryStep(analysis=Analysis(5, 50, None, 0.5)),
        CanaryStep(pause=True, pause_seconds=None),
    )
    assert rollout.analysis == Analysis(10, 20, 0.05, 2.0)


def test_rolling_update_versions_keep_their_hash(write_repo: WriteRepo) -> None:
    # The version agent_yaml() had before canary settings existed.
    (agent,) = load(write_repo, "").agents
    assert agent.version == "7c1acb4588"
    spelled_out = "  rollout:\n    strategy: RollingUpdate\n"
    (same,) = load(write_repo, spelled_out).agents
    assert same.version == agent.version
    (canary,) = load(write_repo, CANARY).agents
    assert canary.version != agent.version


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [
        (
            "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 50\n"
            "      - setWeight: 20\n",
            "weights must increase: 20 follows 50",
        ),
        ("  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 120\n", "100"),
        (
            "  rollout:\n    strategy: Canary\n    steps:\n      - pause: {duration: soon}\n",
            "a duration such as 72h",
        ),
        ("  rollout:\n    strategy: Canary\n", "a Canary rollout needs steps"),
        ("  rollout:\n    steps:\n      - setWeight: 10\n", "steps needs strategy: Canary"),
        (
            "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 10\n"
            "    analysis: {minRequests: 5}\n",
            "an analysis needs a check: errorRate, latencyP95 or prometheus",
        ),
        (
            "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 10\n"
            "    analysis: {latencyP95: {max: fast}}\n",
            "a time such as 2s",
        ),
        (
            "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 10\n"
            "        pause: {}\n",
            "steps[0]",
        ),
    ],
)
def test_bad_canary_settings_are_named(write_repo: WriteRepo, rollout: str, expected: str) -> None:
    assert expected in problems(write_repo, rollout)
