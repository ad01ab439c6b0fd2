"""The reconcile loop: watch branches, and make each environment run what its branch declares.

One loop polls the git source (or is woken by `trigger`), decides which environments
exist (production, one preview per branch), tears down what went away (branch deleted,
merged, expired, evicted) and hands each changed environment to its own task. Per
environment the steps are Flux's (`reconciling`): load and validate at the commit → plan
→ apply (health-gated rollouts, `deploying`) → record (`recorder`). Outcomes are typed
(see `status.Outcome`). This module owns only the loop and its tasks; it builds the
collaborators and hands each module what it needs, never itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from controller.errors import ShipyardError
from controller.metrics.collector import Metrics
from controller.reconciler import (
    assembly,
    canary,
    drivers,
    interrupted,
    lifecycle,
    reporting,
    steering,
)
from controller.reconciler.backoff import Backoff
from controller.reconciler.config import ControllerConfig
from controller.reconciler.status import AgentStatus, EnvironmentStatus, Outcome
from controller.reconciler.target import Target
from controller.source import errors as source_errors
from controller.source import mirror as mirrors
from controller.store.records import EnvironmentRecord, Pin, Rollout
from controller.store.sqlite import Store
from preview import naming
from preview.environments import EnvironmentPolicy
from preview.feedback import Notifier
from preview.github import repository_from_remote

log = logging.getLogger("shipyard.reconciler")


class Controller:
    def __init__(
        self,
        config: ControllerConfig,
        mirror: mirrors.Mirror,
        store: Store,
        target: Target,
        clock: Callable[[], float] = time.time,
        *,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        driver: drivers.Driver | None = None,
    ) -> None:
        self.config = config
        self.mirror = mirror
        self.store = store
        self.target = target
        self.clock = clock
        self.statuses: dict[str, EnvironmentStatus] = {}
        self.source_error: str | None = None
        self.last_fetch: float | None = None
        self.default_branch: str | None = None
        self.first_sync = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._teardowns: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, tuple[str, str]] = {}
        self._retry_at: dict[str, float] = {}
        self._env_backoff: dict[str, Backoff] = {}
        self.open_rollouts = interrupted.OpenRollouts()  # left open by a crash or an API error
        self.canaries = canary.Book()  # running canaries' progress, woken by steering
        self.metrics = metrics if metrics is not None else Metrics()
        self.notifier = notifier
        if driver is None:
            assert hasattr(target, "deploy"), "without a driver, the target runs processes"
            driver = drivers.LocalDriver(target)  # type: ignore[arg-type]
        self.driver = driver
        self.repository = config.forge_repository or repository_from_remote(config.repo)
        parts = assembly.assemble(
            config=config,
            mirror=mirror,
            store=store,
            target=target,
            driver=driver,
            clock=clock,
            metrics=self.metrics,
            notifier=notifier,
            repository=self.repository,
            statuses=self.statuses,
            canaries=self.canaries,
            open_rollouts=self.open_rollouts,
            url=self.url,
            reconcile_again=self._reconcile_again,
        )
        self.parts = parts
        self.recorder, self.commits, self.evaluation = (
            parts.recorder,
            parts.commits,
            parts.evaluation,
        )
        self.steering, self.reconciling = parts.steering, parts.reconciling
        self.metrics.watch(
            lambda: reporting.state(target, self.statuses, store, self.evaluation.case_counts())
        )

    # Running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Restore what ran before, then poll until cancelled."""
        backoff = Backoff(self.config.backoff_base, self.config.backoff_cap)
        while True:
            try:
                outcome = await self.sync_once()
            except Exception:
                # A bug or an unforeseen failure must not end the loop for good: the API
                # would keep answering while nothing reconciles any more.
                log.exception("sync failed unexpectedly; retrying with backoff")
                outcome = Outcome.TRANSIENT
            if outcome is Outcome.TRANSIENT:
                delay = backoff.next_delay()
            else:
                backoff.reset()
                delay = self.config.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    def trigger(self) -> None:
        """Sync now instead of at the next poll; repeated triggers coalesce into one sync."""
        self._wake.set()

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *self._teardowns.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.evaluation.close()
        await self.target.close()
        if self.notifier is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.notifier.flush(), timeout=5)
            await self.notifier.close()
        self.commits.close()
        await self.parts.deployer.close()

    async def wait_idle(self) -> None:
        """Wait until no environment has work in flight (tests and `shipyard up` use it)."""
        while self._tasks or self._teardowns:
            tasks = [*self._tasks.values(), *self._teardowns.values()]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_settled(self) -> None:
        """Wait until every environment's work is done or has become a running canary.

        A canary waits on its steps, its analysis and on people (`pause: {}` holds until
        `rollout promote`), so it is no part of a first sync: waiting for it would keep
        a controller restarted mid-canary unready (and its banner unprinted) for as long
        as nobody promotes."""
        while True:
            pending = [
                task
                for environment, task in self._tasks.items()
                if not self.canaries.running_in(environment)
            ] + list(self._teardowns.values())
            if not pending:
                return
            # A deploy may turn into a canary while it runs: look again now and then.
            await asyncio.wait(pending, timeout=0.25)

    # One poll --------------------------------------------------------------------------

    async def sync_once(self) -> Outcome:
        first = not self.first_sync.is_set()
        in_git = self.commits.in_git
        try:
            with self.metrics.sync_phase("fetch"):
                await in_git(self.mirror.fetch)
        except source_errors.SourceUnavailable as error:
            self.metrics.git_fetch_failed()
            self.source_error = str(error)
            log.warning("fetch failed: %s", error)
            if not await in_git(self.mirror.exists):
                return Outcome.TRANSIENT
            outcome: Outcome = Outcome.TRANSIENT
        else:
            self.source_error = None
            self.last_fetch = self.clock()
            outcome = Outcome.READY
        if first:
            self.open_rollouts.adopt(self.store)
            if self.driver.restores_from_store:
                await self.parts.restore()
        branches = await in_git(self.mirror.branches)
        default = self.config.default_branch or await in_git(self.mirror.default_branch)
        self.default_branch = default or "main"
        policy = EnvironmentPolicy(
            self.default_branch, include=self.config.include, exclude=self.config.exclude
        )
        wanted: dict[str, tuple[str, str]] = {}
        for branch, sha in branches.items():
            environment = policy.environment_for(branch)
            if environment is not None:
                wanted[environment] = (branch, sha)
        await self.parts.retirer.retire(
            wanted,
            into=self.default_branch,
            ttl_of=self.reconciling.ttl_of,
            started=lambda: set(self.statuses) | set(self._tasks) | self.target.environments(),
            begin=self._begin_teardown,
        )
        self._schedule(wanted)
        if first:
            await self._wait_settled()
            self.first_sync.set()
        return outcome

    def _schedule(self, wanted: dict[str, tuple[str, str]]) -> None:
        records = self.store.environment_records()
        now = self.clock()
        # Production first: its reconcile starts before any preview's.
        order = sorted(wanted.items(), key=lambda item: (item[0] != naming.PRODUCTION, item[0]))
        for environment, (branch, sha) in order:
            record = records.get(environment)
            if lifecycle.retired(records, environment, sha):
                continue
            status = self.statuses.get(environment)
            changed = record is None or record.commit != sha
            unobserved = status is None or status.commit != sha
            retry_due = environment in self._retry_at and self._retry_at[environment] <= now
            resync_due = self.reconciling.resync_due(environment, now)
            if changed:
                self.store.save_environment(
                    EnvironmentRecord(environment, branch, sha, now, retired_commit=None)
                )
            if resync_due or retry_due:
                self.reconciling.read_everything_next(environment)
            if changed or unobserved or retry_due or resync_due:
                self._retry_at.pop(environment, None)
                self._enqueue(environment, branch, sha)

    def _enqueue(self, environment: str, branch: str, sha: str) -> None:
        self._pending[environment] = (branch, sha)
        if environment not in self._tasks:
            task = asyncio.create_task(self._work(environment), name=f"reconcile {environment}")
            self._tasks[environment] = task

    def _reconcile_again(self, environment: str) -> None:
        """Steering changed what `environment` should run: reconcile its commit again."""
        status = self.statuses.get(environment)
        if status is not None and status.commit is not None:
            self._enqueue(environment, status.branch, status.commit)

    async def _work(self, environment: str) -> None:
        try:
            teardown = self._teardowns.get(environment)
            if teardown is not None:  # a new push after a teardown began: let it finish
                await asyncio.wait({teardown})
            while environment in self._pending:
                branch, sha = self._pending.pop(environment)
                outcome = await self._reconcile_guarded(environment, branch, sha)
                self.recorder.reconciled(environment, outcome)
                backoff = self._env_backoff.setdefault(
                    environment, Backoff(self.config.backoff_base, self.config.backoff_cap)
                )
                if outcome is Outcome.TRANSIENT:
                    delay = backoff.next_delay()
                    self._retry_at[environment] = self.clock() + delay
                    # Retry when the backoff says, not only at the next poll.
                    asyncio.get_running_loop().call_later(delay, self.trigger)
                else:
                    backoff.reset()
        finally:
            self._tasks.pop(environment, None)

    async def _reconcile_guarded(self, environment: str, branch: str, sha: str) -> Outcome:
        try:
            return await self.reconciling.reconcile(environment, branch, sha)
        except ShipyardError as error:
            log.warning("reconcile %s failed: %s", environment, error)
        except Exception as error:
            log.exception("reconcile %s failed unexpectedly", environment)
            status = self.statuses.get(environment)
            if status is not None:
                message = f"internal error, retrying: {type(error).__name__}: {error}"
                status.set_condition("Reconciling", False, "InternalError", message)
                status.set_condition("Ready", False, "InternalError", message)
        return Outcome.TRANSIENT

    # Teardown --------------------------------------------------------------------------

    def _begin_teardown(
        self, retirement: lifecycle.Retirement, records: dict[str, EnvironmentRecord]
    ) -> None:
        """Mark `retirement` in the store now; tear down in a task of its own.

        `records` may be a snapshot from before other retirements: each touches only its
        own environment's record.
        """
        environment = retirement.environment
        if environment in self._teardowns:
            return
        self.parts.retirer.mark(retirement, records.get(environment))
        self._pending.pop(environment, None)
        if not retirement.started:
            self.recorder.event("Normal", retirement.reason, environment, "", retirement.message)
            return
        nothing_ran = (
            environment not in self.statuses
            and environment not in self._tasks
            and not self.target.running(environment)
        )
        if nothing_ran and retirement.reason == "BranchDeleted":
            return  # a preview that never started (or is long gone) needs no teardown
        reconciling = self._tasks.get(environment)
        task = asyncio.create_task(
            self._teardown(environment, retirement, reconciling), name=f"teardown {environment}"
        )
        self._teardowns[environment] = task
        task.add_done_callback(lambda _: self._teardowns.pop(environment, None))

    async def _teardown(
        self,
        environment: str,
        retirement: lifecycle.Retirement,
        reconciling: asyncio.Task[None] | None,
    ) -> None:
        if reconciling is not None:
            reconciling.cancel()
            await asyncio.gather(reconciling, return_exceptions=True)
        self.reconciling.forget(environment)
        await self.parts.retirer.tear_down(environment, retirement)

    # Steering and reading ----------------------------------------------------------------

    async def undo(
        self, environment: str, agent: str, to_revision: int | None, actor: str, reason: str
    ) -> Rollout:
        return await self.steering.undo(environment, agent, to_revision, actor, reason)

    def pause(self, environment: str, agent: str, actor: str, reason: str) -> Pin:
        return self.steering.pause(environment, agent, actor, reason)

    def resume(self, environment: str, agent: str, actor: str) -> bool:
        return self.steering.resume(environment, agent, actor)

    def status_of(self, environment: str, agent: str) -> AgentStatus:
        return self.steering.status_of(environment, agent)

    def steer_canary(self, environment: str, agent: str, intent: str, actor: str) -> None:
        """Record a canary intent (promote, abort, pause, resume); NotFound for unknown
        names, Conflict when no canary runs."""
        self.status_of(environment, agent)
        steering.steer_canary(
            self.store, self.canaries, environment, agent, intent=intent, actor=actor
        )

    def url(self, agent: str, environment: str) -> str:
        return naming.preview_url(
            self.config.url_template, agent, environment, self.config.public_port
        )

    def environments(self) -> list[dict[str, Any]]:
        return [self.statuses[name].as_dict() for name in sorted(self.statuses)]
