"""The SQLite store: records survive reopening, and repeated writes never duplicate."""

from __future__ import annotations

from pathlib import Path

from controller.store.records import Deployed, EnvironmentRecord, RolloutResult
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
