"""The SQLite store: records survive reopening, and repeated writes never duplicate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.errors import Conflict, NotFound
from controller.reconciler import steering
from controller.store.records import (
    Deployed,
    EnvironmentRecord,
    Pin,
    PinKind,
    ReviewRequest,
    RolloutResult,
)
from controller.store.sqlite import Store


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.set_deployed(Deployed("a", "production", "v1", "c1", "main", 1.0))
    store.record_event(
        type="Normal", reason="RolloutStarted", message="m", environment="production"
    )
    store.save_environment(EnvironmentRecord("production", "main", "c1", 1.0, None))
    store.close()
    reopened = Store(tmp_path / "s.db")
    assert reopened.deployed() == [Deployed("a", "production", "v1", "c1", "main", 1.0)]
    assert [e.reason for e in reopened.events()] == ["RolloutStarted"]
    assert reopened.environment_records()["production"].commit == "c1"
    reopened.close()


def test_one_environment_record_is_read_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    production = EnvironmentRecord("production", "main", "c1", 1.0, None)
    store.save_environment(production)
    store.save_environment(EnvironmentRecord("preview-x", "x", "c2", 2.0, "c2"))
    assert store.environment_record("production") == production
    assert store.environment_record("preview-x") == store.environment_records()["preview-x"]
    assert store.environment_record("missing") is None
    store.close()


def test_a_batch_commits_its_writes_together_or_not_at_all(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with store.batch():
        store.set_deployed(Deployed("a", "production", "v1", "c1", "main", 1.0))
        store.record_event(type="Normal", reason="R", message="m", environment="production")
        assert [d.version for d in store.deployed()] == ["v1"]  # reads see the batch

    def failing_batch() -> None:
        with store.batch():
            store.set_deployed(Deployed("a", "production", "v2", "c2", "main", 2.0))
            raise RuntimeError("a write after this one failed")

    with pytest.raises(RuntimeError):
        failing_batch()
    store.close()
    reopened = Store(tmp_path / "s.db")
    assert [d.version for d in reopened.deployed()] == ["v1"]
    assert [e.reason for e in reopened.events()] == ["R"]
    reopened.close()


def test_revisions_are_numbered_and_recorded_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    fields = {"branch": "main", "author": "ann", "message": "m", "manifest_json": "{}"}
    first = store.record_revision(
        agent="a", environment="production", version="v1", commit="c1", **fields
    )
    again = store.record_revision(
        agent="a", environment="production", version="v1", commit="c1", **fields
    )
    second = store.record_revision(
        agent="a", environment="production", version="v2", commit="c2", **fields
    )
    assert (first.number, again.number, second.number) == (1, 1, 2)
    assert len(store.revisions("a", "production")) == 2


def test_an_unfinished_rollout_is_resumed_not_duplicated(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    args = {
        "agent": "a",
        "environment": "production",
        "from_version": "v1",
        "commit": "c2",
        "author": "ann",
    }
    started = store.begin_rollout(to_version="v2", **args)
    resumed = store.begin_rollout(to_version="v2", **args)
    assert resumed.id == started.id
    store.finish_rollout(started.id, RolloutResult.HEALTHY)
    later = store.begin_rollout(to_version="v3", **args)
    superseding = store.begin_rollout(to_version="v4", **args)
    results = [(r.to_version, r.result) for r in store.rollouts("a", "production")]
    assert results == [
        ("v2", RolloutResult.HEALTHY),
        ("v3", RolloutResult.SUPERSEDED),
        ("v4", RolloutResult.PROGRESSING),
    ]
    assert later.id != superseding.id


def test_listings_hold_the_newest_entries_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    fields = {"branch": "main", "author": "ann", "message": "m", "manifest_json": "{}"}
    for index in range(7):
        store.record_revision(
            agent="a", environment="production", version=f"v{index}", commit=f"c{index}", **fields
        )
        store.begin_rollout(
            agent="a", environment="production", from_version=None, to_version=f"v{index}",
            commit=f"c{index}", author="ann",
        )  # fmt: skip
    assert [r.number for r in store.revisions("a", "production", limit=3)] == [5, 6, 7]
    assert [r.to_version for r in store.rollouts("a", "production", limit=3)] == ["v4", "v5", "v6"]
    newest = store.rollouts("a", "production", limit=1)[0]
    assert store.rollout(newest.id) == newest


def test_undo_goes_to_the_revision_before_the_one_serving(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    fields = {"branch": "main", "author": "ann", "message": "m", "manifest_json": "{}"}
    for version, commit in [("v1", "c1"), ("v2", "c2"), ("v3", "c3"), ("v2", "c4")]:
        store.record_revision(
            agent="a", environment="production", version=version, commit=commit, **fields
        )
    # v2 serves from c2 (v3 failed and was rolled back; c4 later re-declared v2).
    store.set_deployed(Deployed("a", "production", "v2", "c2", "main", 1.0))
    assert steering.undo_target(store, "a", "production", "v2", None).number == 1
    store.set_deployed(Deployed("a", "production", "v2", "c4", "main", 2.0))
    assert steering.undo_target(store, "a", "production", "v2", None).number == 3
    assert steering.undo_target(store, "a", "production", "v2", 2).commit == "c2"
    with pytest.raises(NotFound, match=r"\(revisions: 1 to 4\)"):
        steering.undo_target(store, "a", "production", "v2", 9)
    with pytest.raises(Conflict, match="no earlier revision"):
        steering.undo_target(store, "a", "production", "v1", None)


def test_pins_from_before_pin_kinds_keep_their_meaning(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE pins (environment TEXT NOT NULL, agent TEXT NOT NULL, version TEXT NOT "
        "NULL, pinned_from TEXT, actor TEXT NOT NULL, reason TEXT NOT NULL, created_at REAL "
        "NOT NULL, PRIMARY KEY (environment, agent))"
    )
    old.execute("INSERT INTO pins VALUES ('production', 'a', 'v1', 'v2', 'ann', 'undo', 1.0)")
    old.commit()
    old.close()
    store = Store(path)
    assert [pin.kind for pin in store.pins()] == [PinKind.UNDO]
    store.pin(Pin("production", "b", "v1", None, "ann", "freeze", 2.0, PinKind.PAUSE))
    assert [pin.kind for pin in store.pins("production")] == [PinKind.UNDO, PinKind.PAUSE]


def test_newest_event_id_moves_only_with_events_its_filter_lets_through(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    assert store.newest_event_id() == 0
    first = store.record_event(
        type="Normal", reason="Deployed", message="m", environment="production", agent="a"
    )
    store.record_event(
        type="Normal", reason="Deployed", message="m", environment="preview-x", agent="b"
    )
    assert store.newest_event_id("production", None) == first.id
    assert store.newest_event_id(None, "a") == first.id
    assert store.newest_event_id() == first.id + 1
    assert store.newest_event_id("production", "b") == 0


def test_review_requests_of_many_branches_come_in_one_query(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    for branch, number in (("feature/a", 7), ("feature/a", 3), ("fix'b", 9), ("other", 1)):
        store.record_review_request(ReviewRequest(branch, number, False, frozenset()))
    statements: list[str] = []
    store.on_statement(statements.append)
    found = store.review_requests_of(["feature/a", "fix'b", "missing"])
    store.on_statement(None)
    assert {branch: [r.number for r in rs] for branch, rs in found.items()} == {
        "feature/a": [3, 7],
        "fix'b": [9],
    }
    assert len(statements) == 1


def test_events_with_a_limit_are_the_newest_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    for number in range(5):
        store.record_event(type="Normal", reason=f"R{number}", message="m", agent="a")
    store.record_event(type="Normal", reason="other", message="m", agent="b")
    assert [e.reason for e in store.events(agent="a", limit=2)] == ["R3", "R4"]
    assert len(store.events(agent="a")) == 5


def _history(store: Store, agent: str, environment: str, versions: int) -> None:
    """`versions` versions rolled out one after the other, each a revision and a rollout."""
    for number in range(versions):
        store.record_revision(
            agent=agent, environment=environment, version=f"v{number}", commit=f"c{number}",
            branch="b", author="a", message="m", manifest_json="{}",
        )  # fmt: skip
        rollout = store.begin_rollout(
            agent=agent, environment=environment, from_version=None, to_version=f"v{number}",
            commit=f"c{number}", author="a",
        )  # fmt: skip
        store.finish_rollout(rollout.id, RolloutResult.HEALTHY)


def test_history_is_bounded_per_agent_and_gone_previews_lose_theirs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _history(store, "a", "production", 12)
    store.set_deployed(Deployed("a", "production", "v1", "c1", "main", 1.0))  # runs an old one
    store.pin(Pin("production", "a", "v2", None, "ann", "hold", 1.0, PinKind.UNDO))
    _history(store, "a", "preview-live", 3)
    store.save_environment(EnvironmentRecord("preview-live", "live", "c2", 1.0, None))
    _history(store, "a", "preview-gone", 3)  # torn down: forgotten, nothing deployed
    _history(store, "a", "preview-retired", 3)
    store.save_environment(EnvironmentRecord("preview-retired", "r", "c2", 1.0, "c2"))
    _history(store, "a", "preview-crashed", 2)  # left mid-rollout by a crash: still open
    store.begin_rollout(
        agent="a", environment="preview-crashed", from_version="v1", to_version="v9",
        commit="c9", author="a",
    )  # fmt: skip

    removed = store.prune_history(keep=5, production="production")

    kept = [r.version for r in store.revisions("a", "production", limit=100)]
    assert kept == ["v1", "v2", "v7", "v8", "v9", "v10", "v11"]  # newest 5, running, pinned
    assert [r.to_version for r in store.rollouts("a", "production")] == [
        f"v{n}" for n in range(7, 12)
    ]
    assert len(store.rollouts("a", "preview-live")) == 3
    assert store.rollouts("a", "preview-gone") == []
    assert store.revisions("a", "preview-gone") == []
    assert store.rollouts("a", "preview-retired") == []
    assert len(store.rollouts("a", "preview-crashed")) == 3  # resumed at the next sync
    assert removed == 7 + 5 + 2 * (3 + 3)  # production; gone and retired previews
    assert store.prune_history(keep=5, production="production") == 0
    store.close()
