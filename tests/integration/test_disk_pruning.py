"""Checkouts and blobs no environment or retained revision needs are deleted, and only those.

Real git, a real `shipyard serve` on the local target, real agent processes; what is on
disk under the state directory is read as an operator would (`ls`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.reconciler import disk_pruning
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.reconciler.status import EnvironmentStatus
from controller.source import export_pruning, spare_trees
from controller.source.mirror import Mirror
from controller.store.records import Deployed
from controller.store.sqlite import Store
from controller.targets.local.target import LocalTarget
from tests.gitrepos import Upstream
from tests.integration.controller_harness import (
    Shipyard,
    manifest,
    preview_of,
    seed,
    wait_for,
)

FAST = ("--prune-interval", "0.3s")
NOTE = "agent/note.txt"


def checkout(shipyard: Shipyard, sha: str) -> Path:
    return shipyard.state / "checkouts" / sha


def blob(shipyard: Shipyard, upstream: Upstream, sha: str, path: str) -> Path:
    return shipyard.state / "checkouts" / ".blobs" / upstream.git("rev-parse", f"{sha}:{path}")


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    seed(upstream, "alpha")
    running = Shipyard(upstream.bare, tmp_path / "state", *FAST).start()
    try:
        yield running
    finally:
        running.close()


def push_preview(shipyard: Shipyard, upstream: Upstream, branch: str, note: str) -> str:
    """A branch whose commit changes alpha and holds a file no other commit has."""
    sha = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.9), NOTE: note}, branch=branch
    )
    upstream.push(branch)
    wait_for(lambda: shipyard.serving("alpha", preview_of(branch)), what=f"the {branch} preview")
    upstream.git("checkout", "--quiet", "main")
    return sha


def delete_branch(shipyard: Shipyard, upstream: Upstream, branch: str) -> None:
    upstream.push(f":{branch}")
    environment = preview_of(branch)
    wait_for(lambda: environment not in shipyard.environments(), what="the preview to go")


def test_a_deleted_branchs_checkout_and_blobs_go_and_productions_stay(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    main = upstream.git("rev-parse", "main")
    sha = push_preview(shipyard, upstream, "tmp", "only on tmp\n")
    only_tmp = blob(shipyard, upstream, sha, NOTE)
    shared = blob(shipyard, upstream, main, "agent/server.py")
    assert checkout(shipyard, sha).is_dir()
    assert only_tmp.is_file()

    delete_branch(shipyard, upstream, "tmp")
    wait_for(lambda: not checkout(shipyard, sha).exists(), what="the branch's checkout to go")
    # The spare trees (copies of the last exports, kept to make the next export cheap) may
    # still link the branch's files; as many later exports replace every one of them.
    mains = [main]
    for later in range(spare_trees.KEPT):
        changed = manifest("alpha", temperature=0.1 + later / 10)
        mains.append(upstream.commit({"agents/alpha.yaml": changed}, branch="main"))
        upstream.push("main")
        shipyard.wait_version(
            "alpha", "production", shipyard.wait_desired("alpha", "production", mains[-1])
        )
    wait_for(lambda: not only_tmp.exists(), what="the branch's own blob to go")

    assert (checkout(shipyard, main) / "agent" / "server.py").is_file()
    assert shared.is_file()  # still linked from production's checkouts
    assert shipyard.serving("alpha", "production")
    commits = {path.name for path in (shipyard.state / "checkouts").iterdir()} - {
        ".blobs",
        spare_trees.SPARES,
    }
    assert sha not in commits
    assert commits <= set(mains)  # production's, retained for history and undo


def test_undo_to_a_retained_revision_works_after_pruning(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    first = upstream.git("rev-parse", "main")
    before = shipyard.wait_desired("alpha", "production", first)
    second = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.6)})
    upstream.push("main")
    after = shipyard.wait_desired("alpha", "production", second)
    shipyard.wait_version("alpha", "production", after)
    # A pass has run since production moved on once a deleted branch's checkout is gone.
    gone = push_preview(shipyard, upstream, "scratch", "scratch\n")
    delete_branch(shipyard, upstream, "scratch")
    wait_for(lambda: not checkout(shipyard, gone).exists(), what="a pruning pass")

    assert checkout(shipyard, first).is_dir(), "revision 1 is retained: its checkout stays"
    answer = shipyard.http.post(
        shipyard.api("/api/v1/environments/production/agents/alpha/undo"),
        json={"reason": "back"},
    )
    assert answer.status_code == 200, answer.text
    shipyard.wait_version("alpha", "production", before)


def test_start_up_removes_strays_and_crash_leftovers_but_not_a_fresh_blob_write(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    checkouts = tmp_path / "state" / "checkouts"
    stray = checkouts / ("ab" * 20)
    (stray / "agent").mkdir(parents=True)
    (stray / "agent" / "old.py").write_text("print('old')\n")
    lone_blob = checkouts / ".blobs" / ("cd" * 20)
    lone_blob.parent.mkdir(parents=True)
    lone_blob.write_text("linked from nowhere\n")
    staging = checkouts / f".{'ef' * 20}.x1y2"  # an export a crash interrupted, long ago
    staging.mkdir()
    (staging / "half").write_text("")
    hour_and_more_ago = time.time() - export_pruning.STALE_AFTER_SECONDS - 60
    os.utime(staging, (hour_and_more_ago, hour_and_more_ago))
    writing = checkouts / ".blobs" / ".blob.inprogress"  # as a running export names it
    writing.write_text("partial")

    shipyard = Shipyard(upstream.bare, tmp_path / "state").start()  # default interval: 1h
    try:
        wait_for(lambda: not stray.exists(), what="the stray checkout to go")
        wait_for(lambda: not lone_blob.exists(), what="the unlinked blob to go")
        assert not staging.exists()
        assert writing.is_file(), "a young temporary file may be an export at work"
        assert shipyard.serving("alpha", "production")
    finally:
        shipyard.close()


def test_blob_pruning_never_breaks_an_export_running_beside_it(
    upstream: Upstream, tmp_path: Path
) -> None:
    files = {f"agent/file{index}.txt": f"content {index}\n" for index in range(60)}
    sha = upstream.commit(dict[str, str | None](files), branch="main")
    upstream.push("main")
    source = Mirror(str(upstream.bare), tmp_path / "mirror.git")
    source.fetch()
    checkouts = tmp_path / "checkouts"
    stop = threading.Event()
    passes = 0
    deleted = 0

    def prune_continuously() -> None:
        nonlocal passes, deleted
        while not stop.is_set():
            deleted += export_pruning.delete(checkouts, []).blobs
            passes += 1

    pruner = threading.Thread(target=prune_continuously)
    pruner.start()
    try:
        for attempt in range(40):
            destination = checkouts / sha
            source.export(sha, destination)
            for name, content in files.items():
                assert (destination / name).read_text() == content, (attempt, name)
            shutil.rmtree(destination)  # its blobs are now linked from nowhere
    finally:
        stop.set()
        pruner.join(timeout=30)
        source.close()
    assert passes > 1
    assert deleted > 0, "the pruner must have removed blobs between exports"


def test_what_counts_as_needed(tmp_path: Path) -> None:
    commit = {name: name * 40 for name in "abcdefg"}
    config = ControllerConfig(repo=str(tmp_path / "none"), state_dir=tmp_path / "state")

    async def main() -> set[str]:
        store = Store(config.database)
        controller = Controller(
            config, Mirror(config.repo, config.mirror_dir), store, LocalTarget()
        )
        try:
            # production runs b, and revisions a and b of alpha are in its history
            for sha in (commit["a"], commit["b"]):
                store.record_revision(
                    agent="alpha", environment="production", version=sha[:6], commit=sha,
                    branch="main", author="t", message="m", manifest_json="{}",
                )  # fmt: skip
            store.set_deployed(Deployed("alpha", "production", "v", commit["b"], "main", 0.0))
            # a preview being reconciled at c, not running anything yet
            controller.statuses["pr-1"] = EnvironmentStatus("pr-1", "x", commit=commit["c"])
            # an undo in flight to d in production
            store.begin_rollout(
                agent="alpha", environment="production", from_version="v", to_version="old",
                commit=commit["d"], author="t",
            )  # fmt: skip
            # a torn-down preview's history: e
            store.record_revision(
                agent="alpha", environment="pr-gone", version="v", commit=commit["e"],
                branch="gone", author="t", message="m", manifest_json="{}",
            )  # fmt: skip
            return disk_pruning.needed_commits(controller)
        finally:
            await controller.close()
            store.close()

    needed = asyncio.run(main())
    assert needed == {commit[name] for name in "abcd"}


def test_a_pass_leaves_spare_trees_to_their_owner_however_old(tmp_path: Path) -> None:
    checkouts = tmp_path / "checkouts"
    spare = checkouts / spare_trees.SPARES / "4242.token"
    (spare / "agent").mkdir(parents=True)
    (spare / "agent" / "prompt.md").write_text("kept for the next export\n")
    staging = checkouts / f".{'ef' * 20}.x1y2"
    staging.mkdir()
    long_ago = time.time() - export_pruning.STALE_AFTER_SECONDS - 60
    for old in (staging, spare, checkouts / spare_trees.SPARES):
        os.utime(old, (long_ago, long_ago))

    pruned = export_pruning.delete(checkouts, [])

    assert pruned.leftovers == 1
    assert not staging.exists()
    assert (spare / "agent" / "prompt.md").read_text() == "kept for the next export\n"
