"""Where an interrupted canary had got to, read from its rollout record's history."""

from __future__ import annotations

from typing import Any

from controller.reconciler import canary_resume


def line(kind: str, what: str, step: int = 0, weight: int = 0, at: float = 0.0) -> dict[str, Any]:
    return {"at": at, "kind": kind, "step": step, "steps": 4, "weight": weight, "what": what}


def test_the_last_step_begun_with_its_weight_and_start() -> None:
    history = [
        line("step", "weight 30%", 1, 0, at=100.0),
        line("step", "pause 60s", 2, 30, at=101.0),
    ]
    reached = canary_resume.reached(history, steps=4)
    assert reached == canary_resume.Reached(index=1, weight=30, began_at=101.0, held_by=None)
    assert reached.pause_left(60, now=131.0) == 30.0
    assert reached.pause_left(60, now=500.0) == 0.0  # the pause ran out while it was down


def test_a_hold_lasts_until_resumed_or_promoted() -> None:
    held = [line("step", "pause 6s", 2, 30), line("pause", "by ann: look")]
    reached = canary_resume.reached(held, steps=4)
    assert reached is not None
    assert reached.held_by == "ann: look"
    released = [*held, line("resume", "by bob")]
    assert (canary_resume.reached(released, steps=4) or reached).held_by is None
    promoted = [*held, line("promote", "by bob")]
    assert (canary_resume.reached(promoted, steps=4) or reached).held_by is None


def test_no_step_begun_means_nothing_to_resume_and_an_index_stays_in_range() -> None:
    assert canary_resume.reached([line("evals", "Passed: 2/2")], steps=4) is None
    assert canary_resume.reached([], steps=4) is None
    beyond = canary_resume.reached([line("step", "weight 50%", 9, 10)], steps=4)
    assert beyond is not None
    assert beyond.index == 3


def test_a_decision_already_taken_is_found_and_wins() -> None:
    what = canary_resume.ended_line("Aborted", "analysis failed: error rate 0.4 > 0.05")
    history = [line("step", "weight 30%", 1), line("ended", what)]
    assert canary_resume.decided(history) == (
        "Aborted",
        "analysis failed: error rate 0.4 > 0.05",
    )
    assert canary_resume.decided([line("step", "weight 30%", 1)]) is None
