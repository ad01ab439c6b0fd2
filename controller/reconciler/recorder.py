"""One place the reconciler's modules write what happened: events, rollout ends, syncs.

Flux's recorder, injected: the loop and the modules beside it (steering, lifecycle,
evaluation) say what happened in one line each, and the fan-out to the store's events,
the log and the metrics happens here, never by reaching into the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from controller.metrics.collector import Metrics
from controller.reconciler.status import Outcome
from controller.store.records import RolloutResult
from controller.store.sqlite import Store
from preview import naming

log = logging.getLogger("shipyard.reconciler")


class Recorder:
    def __init__(self, store: Store, metrics: Metrics, clock: Callable[[], float]) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock

    def event(self, type_: str, reason: str, environment: str, agent: str, message: str) -> None:
        self.store.record_event(
            type=type_, reason=reason, message=message, environment=environment, agent=agent
        )
        log.info("%s %s %s/%s: %s", type_, reason, environment, agent or "-", message)

    def reconciled(self, environment: str, outcome: Outcome) -> None:
        """One reconcile of `environment` ended with `outcome`."""
        if outcome is Outcome.READY:
            self.metrics.synced(environment, self.clock())

    def rollout_finished(
        self,
        environment: str,
        agent: str,
        result: RolloutResult,
        started: float,
        *,
        commit: str | None = None,
    ) -> None:
        """A rollout begun at `started` (`time.monotonic`) ended with `result`.

        With the `commit` it deployed from, a healthy rollout also counts as that commit
        going live: the time since the controller first saw it pushed (the environment
        record's `last_push_at`), if the environment still points at that commit.
        """
        seconds = time.monotonic() - started
        self.metrics.rollout_finished(agent, environment, result.value, seconds)
        if result is not RolloutResult.HEALTHY or commit is None:
            return
        # One row, not every environment's: this runs once per rollout of every agent.
        record = self.store.environment_record(environment)
        if record is not None and record.commit == commit:
            kind = "production" if environment == naming.PRODUCTION else "preview"
            self.metrics.commit_live(kind, self.clock() - record.last_push_at)
