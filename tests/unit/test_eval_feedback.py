"""The eval part of pull-request feedback: the status and the comment's comparison."""

from __future__ import annotations

from preview.feedback import EvalComparison, PreviewReport, comment_body, eval_status

SHA = "a" * 40


def row(case: str, preview: bool, production: bool | None, reason: str = "") -> EvalComparison:
    return EvalComparison(
        "alpha",
        "golden",
        case,
        preview,
        12.0,
        reason,
        production,
        None if production is None else 9.0,
    )


def report(*rows: EvalComparison, state: str = "success") -> PreviewReport:
    return PreviewReport("acme/agents", "feature", SHA, "preview-feature", state, (), evals=rows)  # type: ignore[arg-type]


def test_a_case_production_passes_and_the_preview_fails_fails_the_status() -> None:
    state, description = eval_status(report(row("a", True, True), row("b", False, True, "no"))) or (
        "",
        "",
    )
    assert state == "failure"
    assert description == "1 of 2 cases fail where production passes: alpha/b"


def test_a_case_failing_on_both_sides_is_not_the_change() -> None:
    assert eval_status(report(row("a", True, True), row("b", False, False))) == (
        "success",
        "1 of 2 cases pass",
    )


def test_without_production_results_a_failing_case_fails() -> None:
    state, _ = eval_status(report(row("a", False, None))) or ("", "")
    assert state == "failure"


def test_no_status_without_results_or_before_success() -> None:
    assert eval_status(report()) is None
    assert eval_status(report(row("a", True, True), state="pending")) is None


def test_the_comment_compares_each_case_side_by_side() -> None:
    body = comment_body(
        report(row("a|b", False, True, "status 500, expected 200"), row("c", True, None))
    )
    assert (
        "| alpha | golden/a\\|b | ❌ fail (12 ms) | ✅ pass (9 ms) | status 500, expected 200 |"
        in body
    )
    assert "| alpha | golden/c | ✅ pass (12 ms) | — |  |" in body


def test_an_invalid_suite_fails_the_status_and_is_listed() -> None:
    problem = "evals/a.yaml:9:16: spec.cases[0].expect.regex: nested quantifiers"
    invalid = PreviewReport(
        "acme/agents", "feature", SHA, "preview-feature", "success", (), eval_problems=(problem,)
    )
    assert eval_status(invalid) == ("failure", f"invalid eval suite: {problem}")
    assert problem in comment_body(invalid)
