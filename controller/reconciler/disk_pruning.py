"""Keeps the state directory's checkouts, blob store and history to what can still be used.

Every deployed commit gets a checkout (and its files a place in the blob store); a
deleted branch's or an old commit's stays forever unless something removes it. This
decides which commits are still needed and has `export_pruning` remove the rest: once
after the first sync (what ran before a restart is restored by then) and then every
`prune_interval`.

A commit is needed while an environment that still exists has it as its current commit
(set before its checkout is made, so a rollout in progress keeps its tree) or runs it,
while a rollout of it is open, or while it is one of the newest `RETAINED_REVISIONS`
revisions of an agent of such an environment: what `rollout history` shows and
`rollout undo` returns to without a new export. An undo to an older revision exports its
commit again from the mirror. The store's rollout and revision records are bounded the
same way (`Store.prune_history`): the newest `RETAINED_REVISIONS` per agent and
environment, and nothing of a preview that is gone.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping
from typing import Protocol

from controller.reconciler.config import ControllerConfig
from controller.reconciler.status import EnvironmentStatus
from controller.source import export_pruning
from controller.store.sqlite import Store
from preview import naming

log = logging.getLogger("shipyard.pruning")

RETAINED_REVISIONS = 500  # as many as `rollout history` lists per agent and environment
DEFAULT_INTERVAL_SECONDS = 3600.0


class Controller(Protocol):
    """What pruning reads of the running controller (and nothing else of it)."""

    @property
    def config(self) -> ControllerConfig: ...

    @property
    def store(self) -> Store: ...

    @property
    def statuses(self) -> Mapping[str, EnvironmentStatus]: ...

    @property
    def first_sync(self) -> asyncio.Event: ...


def needed_commits(controller: Controller) -> set[str]:
    """Commits whose checkouts must stay: current, running, or retained for undo."""
    needed = {status.commit for status in controller.statuses.values() if status.commit}
    agents: dict[str, set[str]] = {
        name: set(status.agents) for name, status in controller.statuses.items()
    }
    for record in controller.store.deployed():
        needed.add(record.commit)
        agents.setdefault(record.environment, set()).add(record.agent)
    # In flight (an undo to an old revision among them), or left open by a crash.
    needed.update(rollout.commit for rollout in controller.store.open_rollouts())
    for environment, names in agents.items():
        for agent in names:
            revisions = controller.store.revisions(agent, environment, limit=RETAINED_REVISIONS)
            needed.update(revision.commit for revision in revisions)
    return needed


async def prune_once(controller: Controller) -> export_pruning.Pruned:
    """One pass: decide, set aside (both on the event loop, so no reconcile step can
    start using a checkout in between), then delete in a thread."""
    checkouts = controller.config.checkouts_dir
    candidates = await asyncio.to_thread(export_pruning.unneeded_checkouts, checkouts, ())
    needed = needed_commits(controller)
    moved = export_pruning.set_aside(checkouts, [name for name in candidates if name not in needed])
    pruned = await asyncio.to_thread(export_pruning.delete, checkouts, moved)
    if pruned.checkouts or pruned.blobs or pruned.leftovers:
        log.info(
            "pruned %d checkouts, %d blobs (%d bytes), %d leftovers of interrupted exports",
            pruned.checkouts,
            pruned.blobs,
            pruned.blob_bytes,
            pruned.leftovers,
        )
    return pruned


async def prune_history(controller: Controller) -> int:
    """The store's rollout and revision history bounded as `rollout history` shows it."""
    removed = await asyncio.to_thread(
        controller.store.prune_history, RETAINED_REVISIONS, naming.PRODUCTION
    )
    if removed:
        log.info("pruned %d rollout and revision records", removed)
    return removed


async def run(controller: Controller, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
    """Prune after the first sync, then every `interval` seconds, until cancelled."""
    await controller.first_sync.wait()
    while True:
        try:
            await prune_history(controller)
            await prune_once(controller)
        except (OSError, sqlite3.Error) as error:
            # A full or read-only disk must not end pruning for good; the next pass retries.
            log.warning("pruning failed (%s); retrying in %.0fs", error, interval)
        await asyncio.sleep(interval)
