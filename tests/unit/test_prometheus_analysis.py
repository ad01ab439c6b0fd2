"""PromQL analyses and the eval gate's settings in the manifest: typed, checked, and
versions that existed before them keep their hash; the pure parts of judging them."""

from __future__ import annotations

import pytest

from controller.reconciler import eval_gate, prometheus_analysis
from controller.reconciler.canary_analysis import Result, Verdict
from controller.specs import loading
from controller.specs.model import PrometheusCheck
from controller.specs.tree import FilesystemTree
from controller.store.eval_results import CaseResult
from tests.conftest import WriteRepo, agent_yaml

PROMPT = "You are a helpful support agent.\n"

QUERIED = """\
  rollout:
    strategy: Canary
    requireEvals: true
    steps:
      - setWeight: 20
      - analysis:
          interval: 5s
          prometheus:
            - name: success-rate
              query: sum(rate(x{agent="{{agent}}",version="{{ canary }}"}[{{interval}}]))
              successCondition: result >= 0.95
    analysis:
      prometheus:
        - name: p99
          query: max(y{version="{{canary}}"})
          successCondition: "result<2.5e-1"
"""


def load(write_repo: WriteRepo, rollout: str) -> loading.LoadResult:
    root = write_repo({"agents/a.yaml": agent_yaml() + rollout, "prompts/support-bot.md": PROMPT})
    return loading.collect(FilesystemTree(root))


def test_queries_and_the_gate_are_typed(write_repo: WriteRepo) -> None:
    result = load(write_repo, QUERIED)
    assert result.ok, [p.render() for p in result.problems]
    (agent,) = result.agents
    rollout = agent.spec.rollout
    assert rollout.require_evals
    step = rollout.steps[1].analysis
    assert step is not None
    assert step.queries == (
        PrometheusCheck(
            "success-rate",
            'sum(rate(x{agent="{{agent}}",version="{{ canary }}"}[{{interval}}]))',
            ">=",
            0.95,
        ),
    )
    assert not step.checks_requests  # minRequests does not hold a query-only analysis
    assert rollout.analysis is not None
    assert rollout.analysis.queries[0].condition == "result < 0.25"


def test_versions_without_the_new_fields_keep_their_hash(write_repo: WriteRepo) -> None:
    # The versions these manifests had before queries and requireEvals existed.
    (plain,) = load(write_repo, "").agents
    assert plain.version == "7c1acb4588"
    (gated,) = load(write_repo, "  rollout:\n    requireEvals: false\n").agents
    assert gated.version == plain.version
    builtin = (
        "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 20\n"
        "    analysis: {errorRate: {max: 0.05}}\n"
    )
    (canary,) = load(write_repo, builtin).agents
    assert canary.version == "f7ec4371fc"  # as before queries existed
    (required,) = load(write_repo, "  rollout:\n    requireEvals: true\n").agents
    assert required.version != plain.version


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "{name: q, query: 'up{job=\"{{ job }}\"}', successCondition: result > 0}",
            "unknown placeholder {{job}}",
        ),
        (
            "{name: q, query: up, successCondition: 'result > 0 or 1'}",
            "result compared with a number, such as result >= 0.95",
        ),
        ("{name: q, query: up}", "successCondition"),
        ("{name: Q_1, query: up, successCondition: result > 0}", "letters"),
    ],
)
def test_bad_queries_are_named(write_repo: WriteRepo, query: str, expected: str) -> None:
    rollout = (
        "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 10\n"
        f"    analysis:\n      prometheus:\n        - {query}\n"
    )
    result = load(write_repo, rollout)
    assert not result.ok
    rendered = "\n".join(problem.render() for problem in result.problems)
    assert expected in rendered, rendered


def test_a_query_named_twice_is_refused(write_repo: WriteRepo) -> None:
    twice = "{name: q, query: up, successCondition: result > 0}"
    rollout = (
        "  rollout:\n    strategy: Canary\n    steps:\n      - setWeight: 10\n"
        f"    analysis:\n      prometheus:\n        - {twice}\n        - {twice}\n"
    )
    result = load(write_repo, rollout)
    assert "q is named twice" in "\n".join(p.render() for p in result.problems)


def test_placeholders_are_filled_and_verdicts_combined() -> None:
    rendered = prometheus_analysis.render(
        'x{agent="{{agent}}",v="{{ canary }}",other="{{nope}}"}[{{interval}}]',
        {"agent": "alpha", "canary": "abc", "interval": "5s"},
    )
    assert rendered == 'x{agent="alpha",v="abc",other="{{nope}}"}[5s]'
    passed, held, failed = (
        Verdict(Result.PASSED, "a"),
        Verdict(Result.INCONCLUSIVE, "b"),
        Verdict(Result.FAILED, "c"),
    )
    assert prometheus_analysis.combine([passed, held, failed]) == Verdict(Result.FAILED, "c")
    assert prometheus_analysis.combine([passed, held]) == Verdict(Result.INCONCLUSIVE, "b")
    assert prometheus_analysis.combine([passed, passed]).result is Result.PASSED


def test_the_gate_fails_only_on_cases_that_pass_on_stable() -> None:
    def case(name: str, passed: bool) -> CaseResult:
        return CaseResult("golden", name, passed, 5.0, "" if passed else f"{name} wrong")

    cases = [("golden", name) for name in ("greets", "refunds", "escalates")]
    stable = [case("greets", True), case("refunds", False), case("escalates", True)]
    same = [case("greets", True), case("refunds", False), case("escalates", True)]
    assert eval_gate.verdict(stable, same, "v1", cases).result is Result.PASSED
    worse = [case("greets", True), case("refunds", False), case("escalates", False)]
    verdict = eval_gate.verdict(stable, worse, "v1", cases)
    assert verdict.result is Result.FAILED
    assert "golden/escalates: escalates wrong" in verdict.message
    assert "refunds" not in verdict.message  # failing on stable too: not a regression


def test_the_gate_never_passes_for_want_of_results() -> None:
    def case(name: str, passed: bool) -> CaseResult:
        return CaseResult("golden", name, passed, 5.0, "" if passed else f"{name} wrong")

    cases = [("golden", "greets"), ("golden", "refunds")]
    # Stable unreached (no results): a failure on the new version still blocks.
    verdict = eval_gate.verdict([], [case("greets", True), case("refunds", False)], "v1", cases)
    assert verdict.result is Result.FAILED
    assert "golden/refunds: refunds wrong (no result on v1)" in verdict.message
    assert (
        eval_gate.verdict([], [case("greets", True), case("refunds", True)], "v1", cases).result
        is Result.PASSED
    )
    # The new version unreached: nothing passes for it.
    stable = [case("greets", True), case("refunds", True)]
    verdict = eval_gate.verdict(stable, [case("greets", True)], "v1", cases)
    assert verdict.result is Result.FAILED
    assert "golden/refunds: not evaluated" in verdict.message
