"""The reconcile loop: watch branches, and make each environment run what its branch declares.

One loop polls the git source (or is woken by `trigger`), decides which environments
exist (production, one preview per branch), tears down what went away (branch deleted,
merged, expired, evicted) and hands each changed environment to its own task. Per
environment the steps are Flux's: load and validate at the commit → plan → apply
(health-gated rollouts) → record. Outcomes are typed (see `status.Outcome`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from controller.errors import Conflict, NotFound, ShipyardError, Transient
from controller.metrics.collector import Metrics
from controller.reconciler import (
    canary,
    canary_deploy,
    drivers,
    evaluation,
    interrupted,
    launching,
    lifecycle,
    manifest_cache,
    planner,
    pr_feedback,
    reporting,
    secret_access,
    steering,
)
from controller.reconciler.backoff import Backoff
from controller.reconciler.config import ControllerConfig
from controller.reconciler.status import AgentStatus, EnvironmentStatus, Outcome
from controller.reconciler.target import Target
from controller.source import errors as source_errors
from controller.source import mirror as mirrors
from controller.specs import loading
from controller.specs.model import Agent
from controller.store.records import (
    Deployed,
    EnvironmentRecord,
    Pin,
    PinKind,
    Rollout,
    RolloutResult,
)
from controller.store.sqlite import Store
from preview import naming
from preview.environments import EnvironmentPolicy
from preview.feedback import Notifier
from preview.github import repository_from_remote

log = logging.getLogger("shipyard.reconciler")
T = TypeVar("T")

DEFAULT_PREVIEW_TTL = 72 * 3600


@dataclass(frozen=True)
class _Loaded:
    result: loading.LoadResult
    commit: mirrors.Commit


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
        self._git = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-git")
        # A deploy's store records are written here, in order, off the event loop.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-store")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._teardowns: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, tuple[str, str]] = {}
        self._failed: dict[tuple[str, str], str] = {}
        self._ttl: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._reconciled_at: dict[str, float] = {}
        self._thorough: set[str] = set()  # environments due a full read-back of the target
        self._refreshed: set[str] = set()
        self.reported: dict[str, tuple[str, str]] = {}  # environment → (commit, state) on PRs
        self._env_backoff: dict[str, Backoff] = {}
        self.open_rollouts = interrupted.OpenRollouts()  # left open by a crash or an API error
        self.canaries = canary.Book()  # running canaries' progress, woken by steering
        self.metrics = metrics if metrics is not None else Metrics()
        self.notifier = notifier
        self.evaluation = evaluation.Evaluation.for_controller(self)
        if driver is None:
            assert hasattr(target, "deploy"), "without a driver, the target runs processes"
            driver = drivers.LocalDriver(target)  # type: ignore[arg-type]
        self.driver = driver
        self._manifests = manifest_cache.ManifestCache(target=driver.validates_for)
        self.repository = config.forge_repository or repository_from_remote(config.repo)
        self.metrics.watch(lambda: reporting.state(self))

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
        self._git.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._writer.shutdown)  # records queued are written first

    async def _in_store(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)

    async def _in_git(self, function: Callable[..., T], *args: Any) -> T:
        # gitpython's object readers are not thread-safe: one thread owns every git call.
        return await asyncio.get_running_loop().run_in_executor(self._git, function, *args)

    async def wait_idle(self) -> None:
        """Wait until no environment has work in flight (tests and `shipyard up` use it)."""
        while self._tasks or self._teardowns:
            tasks = [*self._tasks.values(), *self._teardowns.values()]
            await asyncio.gather(*tasks, return_exceptions=True)

    # One poll --------------------------------------------------------------------------

    async def sync_once(self) -> Outcome:
        first = not self.first_sync.is_set()
        try:
            with self.metrics.sync_phase("fetch"):
                await self._in_git(self.mirror.fetch)
        except source_errors.SourceUnavailable as error:
            self.metrics.git_fetch_failed()
            self.source_error = str(error)
            log.warning("fetch failed: %s", error)
            if not await self._in_git(self.mirror.exists):
                return Outcome.TRANSIENT
            outcome: Outcome = Outcome.TRANSIENT
        else:
            self.source_error = None
            self.last_fetch = self.clock()
            outcome = Outcome.READY
        if first:
            await self._restore()
        branches = await self._in_git(self.mirror.branches)
        default = self.config.default_branch or await self._in_git(self.mirror.default_branch)
        self.default_branch = default or "main"
        policy = EnvironmentPolicy(
            self.default_branch, include=self.config.include, exclude=self.config.exclude
        )
        wanted: dict[str, tuple[str, str]] = {}
        for branch, sha in branches.items():
            environment = policy.environment_for(branch)
            if environment is not None:
                wanted[environment] = (branch, sha)
        await self._retire(wanted)
        self._schedule(wanted)
        if first:
            await self.wait_idle()
            self.first_sync.set()
        return outcome

    async def _retire(self, wanted: dict[str, tuple[str, str]]) -> None:
        """Take down previews whose branch was deleted, merged, expired or is over the cap.

        Only decisions and store marks happen here, so production's reconcile, scheduled
        right after, never waits; the teardowns run in tasks of their own.
        """
        records = self.store.environment_records()
        known = set(records) | self.target.environments() | set(self.statuses)
        for retirement in lifecycle.deleted(known, wanted):
            self._begin_teardown(retirement, records)
        for retirement in await self._merged(wanted, records):
            self._begin_teardown(retirement, records)
        records = self.store.environment_records()
        ttl_of = lambda environment: self._ttl.get(environment, DEFAULT_PREVIEW_TTL)  # noqa: E731
        for retirement in lifecycle.expired(records, ttl_of, self.clock()):
            self._begin_teardown(retirement, records)
        records = self.store.environment_records()
        if len(lifecycle.live(wanted, records)) <= self.config.max_previews:
            return
        started = set(self.statuses) | set(self._tasks) | self.target.environments()
        times = await self._in_git(self.mirror.branch_times)
        for retirement in lifecycle.over_cap(
            wanted,
            records,
            cap=self.config.max_previews,
            now=self.clock(),
            commit_times=times,
            started=started,
        ):
            self._begin_teardown(retirement, records)

    async def _merged(
        self, wanted: dict[str, tuple[str, str]], records: dict[str, EnvironmentRecord]
    ) -> list[lifecycle.Retirement]:
        production = wanted.get(naming.PRODUCTION)
        previous = records.get(naming.PRODUCTION)
        found = await self._merged_before_seen(wanted, records)
        if not production or not previous or production[1] == previous.commit:
            return found
        try:
            now_in = await self._in_git(self.mirror.branches_contained_in, production[1])
            was_in = await self._in_git(self.mirror.branches_contained_in, previous.commit)
        except ShipyardError as error:  # the old commit vanished in a force-push
            log.warning("merge detection skipped: %s", error)
            return found
        for environment, branch, sha, seen in lifecycle.merge_candidates(
            wanted, records, now_in, was_in
        ):
            try:
                # Nothing of its own when last seen (it pointed into the old production):
                # moved along with production, not merged.
                if await self._in_git(self.mirror.is_ancestor, seen, previous.commit):
                    continue
            except ShipyardError as error:
                log.warning("merge detection skipped %s: %s", branch, error)
                continue
            found.append(lifecycle.merged(environment, branch, sha, self.default_branch or ""))
        return found

    async def _merged_before_seen(
        self, wanted: dict[str, tuple[str, str]], records: dict[str, EnvironmentRecord]
    ) -> list[lifecycle.Retirement]:
        """Branches production had merged before this controller ever saw them."""
        production = wanted.get(naming.PRODUCTION)
        unseen = set(wanted) - set(records) - {naming.PRODUCTION}
        if not production or not unseen:
            return []
        try:
            contained = await self._in_git(self.mirror.branches_contained_in, production[1])
            if not any(wanted[environment][0] in contained for environment in unseen):
                return []
            mainline = await self._in_git(self.mirror.first_parent_history, production[1])
        except ShipyardError as error:
            log.warning("merge detection skipped: %s", error)
            return []
        started = set(self.statuses) | self.target.environments()
        return lifecycle.merged_before_seen(
            wanted, records, contained, mainline, into=self.default_branch or "", started=started
        )

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
            # Periodic resync finds drift even when no commit arrives (as Flux's interval).
            resync_due = (
                now - self._reconciled_at.get(environment, now) > self.config.resync_interval
            )
            if changed:
                self.store.save_environment(
                    EnvironmentRecord(environment, branch, sha, now, retired_commit=None)
                )
            if resync_due or retry_due:
                self._thorough.add(environment)
            if changed or unobserved or retry_due or resync_due:
                self._retry_at.pop(environment, None)
                self._enqueue(environment, branch, sha)

    def _enqueue(self, environment: str, branch: str, sha: str) -> None:
        self._pending[environment] = (branch, sha)
        if environment not in self._tasks:
            task = asyncio.create_task(self._work(environment), name=f"reconcile {environment}")
            self._tasks[environment] = task

    async def _work(self, environment: str) -> None:
        try:
            teardown = self._teardowns.get(environment)
            if teardown is not None:  # a new push after a teardown began: let it finish
                await asyncio.wait({teardown})
            while environment in self._pending:
                branch, sha = self._pending.pop(environment)
                try:
                    outcome = await self.reconcile(environment, branch, sha)
                except ShipyardError as error:
                    log.warning("reconcile %s failed: %s", environment, error)
                    outcome = Outcome.TRANSIENT
                except Exception as error:
                    log.exception("reconcile %s failed unexpectedly", environment)
                    status = self.statuses.get(environment)
                    if status is not None:
                        message = f"internal error, retrying: {type(error).__name__}: {error}"
                        status.set_condition("Reconciling", False, "InternalError", message)
                        status.set_condition("Ready", False, "InternalError", message)
                    outcome = Outcome.TRANSIENT
                reporting.reconciled(self, environment, outcome)
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

    # One environment -------------------------------------------------------------------

    async def reconcile(self, environment: str, branch: str, sha: str) -> Outcome:
        status = self.statuses.setdefault(environment, EnvironmentStatus(environment, branch))
        status.branch = branch
        self._reconciled_at[environment] = self.clock()
        status.set_condition("Reconciling", True, "Progressing", f"reconciling {sha[:12]}")
        try:
            with self.metrics.sync_phase("load"):
                loaded = await self._in_git(self._load, sha)
        except ShipyardError as error:
            status.set_condition("Reconciling", False, "SourceError", str(error))
            status.set_condition("Ready", False, "SourceError", str(error))
            return Outcome.TRANSIENT
        status.commit = sha
        if loaded.result.problems:
            return self._stall(status, loaded.result)
        status.problems = []
        status.set_condition("Stalled", False, "ManifestsValid")
        production = environment == naming.PRODUCTION
        desired = {
            agent.name: agent
            for agent in loaded.result.agents
            if production or agent.spec.preview.enabled
        }
        if production and not desired and not self.config.allow_empty_production:
            running = self.target.running(environment)
            if running:
                return self._refuse_empty_production(status, sha, sorted(running))
        if not production:
            self._remember_ttl(environment, desired)
        await self._read_back(environment)
        running = await interrupted.resume(
            self, environment, desired, self.target.running(environment)
        )
        failed = {
            agent: version for (env, agent), version in self._failed.items() if env == environment
        }
        pinned = self._pins(environment, desired)
        with self.metrics.sync_phase("plan"):
            actions = planner.plan(desired, running, failed=failed, pinned=pinned)
        # Status shows the commit and its desired versions together, before rollouts begin.
        self._refresh_agents(status, desired, sha)
        pr_feedback.report(self, status, "pending")
        apply_started = time.perf_counter()
        deploys = [action for action in actions if isinstance(action, planner.Deploy)]
        workdir = await self._checkout(sha) if deploys else None
        results = await asyncio.gather(
            *(
                self._deploy(environment, branch, loaded.commit, workdir, action)
                for action in deploys
            )
        )
        for action in actions:
            if isinstance(action, planner.Remove):
                await self.target.remove(environment, action.agent)
                self.store.clear_deployed(environment, action.agent)
                self._event(
                    "Normal",
                    "AgentRemoved",
                    environment,
                    action.agent,
                    f"{action.agent} {action.current} stopped: no longer declared",
                )
        self.metrics.observe_phase("apply", time.perf_counter() - apply_started)
        self._refresh_agents(status, desired, sha)
        if any(result is None for result in results):
            return self._retrying(status)
        status.set_condition("Reconciling", False, "Done", f"reconciled {sha[:12]}")
        settled = all(a.rolled_out or a.state == "Pinned" for a in status.agents.values())
        if all(results) and settled:
            status.set_condition("Ready", True, "Succeeded", f"serving commit {sha[:12]}")
            pr_feedback.report(self, status, "success")
            self.evaluation.environment_ready(environment, sha)
            return Outcome.READY
        failed_agents = [name for name, agent in status.agents.items() if not agent.rolled_out]
        status.set_condition(
            "Ready",
            False,
            "RolloutFailed",
            f"not healthy: {', '.join(failed_agents)}; waiting for a new commit",
        )
        pr_feedback.report(self, status, "failure")
        return Outcome.WAITING

    def _retrying(self, status: EnvironmentStatus) -> Outcome:
        message = "the target's API failed mid-rollout; retrying with backoff"
        status.set_condition("Reconciling", True, "Retrying", message)
        status.set_condition("Ready", False, "TransientError", message)
        return Outcome.TRANSIENT

    def _load(self, sha: str) -> _Loaded:
        tree = self.mirror.tree(sha)
        result = self._manifests.collect(tree, self.config.manifests_root)
        return _Loaded(result, self.mirror.commit(sha))

    def _stall(self, status: EnvironmentStatus, result: loading.LoadResult) -> Outcome:
        status.problems = [problem.as_dict() for problem in result.problems]
        first = result.problems[0].render()
        more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        # A new preview has no last good versions: say so rather than promise any.
        serving = (
            "still serving the last good versions"
            if self.target.running(status.name)
            else "nothing from this branch runs yet"
        )
        message = f"invalid manifests: {first}{more}; {serving}"
        was_stalled = status.conditions.get("Stalled")
        status.set_condition("Stalled", True, "ManifestInvalid", message)
        status.set_condition("Ready", False, "ManifestInvalid", message)
        status.set_condition("Reconciling", False, "Stalled", message)
        if was_stalled is None or not was_stalled.status or was_stalled.message != message:
            self._event("Warning", "ManifestInvalid", status.name, "", message)
        self._refresh_agents(status, None, status.commit)
        pr_feedback.report(self, status, "failure")
        return Outcome.STALLED

    def _refuse_empty_production(
        self, status: EnvironmentStatus, sha: str, running: list[str]
    ) -> Outcome:
        """A commit that declares no agents would stop all of production: hold, say why."""
        message = (
            f"commit {sha[:12]} declares no agents; refusing to remove every production agent "
            f"({', '.join(running)}). Restore agents/ or start the controller with "
            "--allow-empty-production to allow it; still serving the last good versions"
        )
        was_stalled = status.conditions.get("Stalled")
        status.set_condition("Stalled", True, "EmptyProduction", message)
        status.set_condition("Ready", False, "EmptyProduction", message)
        status.set_condition("Reconciling", False, "Stalled", message)
        if was_stalled is None or not was_stalled.status or was_stalled.message != message:
            self._event("Warning", "EmptyProduction", status.name, "", message)
        self._refresh_agents(status, None, sha)
        pr_feedback.report(self, status, "failure")
        return Outcome.STALLED

    async def _read_back(self, environment: str) -> None:
        # Reading back everything the target runs is for drift, on resyncs and retries, and
        # the first time after a start; a push in between needs only what changed.
        thorough = environment in self._thorough or environment not in self._refreshed
        self._thorough.discard(environment)
        self._refreshed.add(environment)
        for drift in await self.driver.refresh(environment, thorough=thorough):
            self._event(
                "Warning",
                "DriftDetected",
                environment,
                drift.split(":")[0],
                f"{drift}; applying the declared state again",
            )

    def _remember_ttl(self, environment: str, desired: dict[str, Agent]) -> None:
        # A preview lives as long as the longest TTL among its agents.
        self._ttl[environment] = max(
            (agent.spec.preview.ttl_seconds for agent in desired.values()),
            default=DEFAULT_PREVIEW_TTL,
        )

    async def _deploy(
        self,
        environment: str,
        branch: str,
        commit: mirrors.Commit,
        workdir: Path | None,
        action: planner.Deploy,
    ) -> bool | None:
        """True when healthy, False on a health verdict, None when the target's API failed
        (the rollout stays open, to be resumed by the next reconcile)."""
        agent = action.agent
        key = (environment, agent.name)
        placement = drivers.Placement(
            agent,
            environment,
            commit.sha,
            branch,
            commit.author,
            commit.message,
            workdir,
            secrets=secret_access.secrets_for(self, environment, branch),
        )
        try:
            request = await self.driver.prepare(placement)
        except launching.NotLaunchable as error:
            self._failed[key] = agent.version
            self._event("Warning", "NotLaunchable", environment, agent.name, str(error))
            self._agent_message(environment, agent.name, str(error))
            return False
        rollout = await self._in_store(self._open_rollout, environment, branch, commit, action)
        deadline = float(agent.spec.rollout.progress_deadline_seconds)
        started = time.monotonic()
        aborted = False
        try:
            if canary_deploy.applies(agent, action.current, self.driver):
                assert action.current is not None
                outcome = await canary_deploy.deploy(
                    driver=self.driver,
                    store=self.store,
                    book=self.canaries,
                    windows=self.metrics.windows,
                    agent=agent,
                    request=request,
                    stable=action.current,
                    deadline_seconds=deadline,
                )
                result, aborted = outcome.result, outcome.aborted
            else:
                result = await self.driver.deploy(request, deadline)
        except Transient as error:
            self.open_rollouts.add(rollout, interrupted.API_ERROR)
            message = f"{agent.version}: {error}; the rollout stays open and is retried"
            self._event("Warning", "RolloutRetrying", environment, agent.name, message)
            return None
        if result.healthy:
            await self._in_store(
                functools.partial(
                    self._record_healthy,
                    environment,
                    branch,
                    commit,
                    action,
                    rollout=rollout,
                    started=started,
                )
            )
            self._failed.pop(key, None)
            return True
        self._failed[key] = agent.version
        if aborted:
            reason = f"{result.message}; all traffic back on {action.current}"
            self.store.finish_rollout(rollout.id, RolloutResult.ABORTED, reason)
        elif action.current is not None:
            reason = f"{result.message}; rolled back: {action.current} keeps serving"
            self.store.finish_rollout(rollout.id, RolloutResult.ROLLED_BACK, reason)
        else:
            reason = result.message
            self.store.finish_rollout(rollout.id, RolloutResult.FAILED, reason)
        ended = RolloutResult.ROLLED_BACK if action.current is not None else RolloutResult.FAILED
        ended = RolloutResult.ABORTED if aborted else ended
        reporting.rollout_finished(self, environment, agent.name, ended, started)
        self._event(
            "Warning",
            "RolloutAborted" if aborted else "RolloutFailed",
            environment,
            agent.name,
            f"{agent.version} {'aborted' if aborted else 'failed'}: {reason}",
        )
        self._agent_message(environment, agent.name, reason)
        return False

    def _open_rollout(
        self, environment: str, branch: str, commit: mirrors.Commit, action: planner.Deploy
    ) -> Rollout:
        """The revision, the rollout and its start event, in one transaction."""
        agent = action.agent
        with self.store.batch():
            self.store.record_revision(
                agent=agent.name,
                environment=environment,
                version=agent.version,
                commit=commit.sha,
                branch=branch,
                author=commit.author,
                message=commit.message,
                manifest_json=json.dumps(agent.manifest, sort_keys=True),
                prompt_text=agent.spec.prompt.text if agent.spec.prompt.file else None,
            )
            rollout = self.store.begin_rollout(
                agent=agent.name,
                environment=environment,
                from_version=action.current,
                to_version=agent.version,
                commit=commit.sha,
                author=commit.author,
            )
            moving = f"{action.current} → {agent.version}" if action.current else agent.version
            self._event(
                "Normal",
                "RolloutStarted",
                environment,
                agent.name,
                f"rolling out {moving} from {commit.sha[:12]}",
            )
        return rollout

    def _record_healthy(
        self,
        environment: str,
        branch: str,
        commit: mirrors.Commit,
        action: planner.Deploy,
        *,
        rollout: Rollout,
        started: float,
    ) -> None:
        """The rollout's result, what is now deployed and the success event, in one transaction."""
        agent = action.agent
        with self.store.batch():
            self.store.finish_rollout(rollout.id, RolloutResult.HEALTHY)
            reporting.rollout_finished(
                self, environment, agent.name, RolloutResult.HEALTHY, started, commit=commit.sha
            )
            self.store.set_deployed(
                Deployed(agent.name, environment, agent.version, commit.sha, branch, self.clock())
            )
            self._event(
                "Normal",
                "RolloutSucceeded",
                environment,
                agent.name,
                f"{agent.version} is healthy and serving",
            )

    async def _checkout(self, sha: str) -> Path | None:
        """The commit's files on disk, for drivers that run agents from them."""
        if not self.driver.needs_checkout:
            return None
        return await self._in_git(self.mirror.export, sha, self.config.checkouts_dir / sha)

    def _refresh_agents(
        self, status: EnvironmentStatus, desired: dict[str, Agent] | None, sha: str | None
    ) -> None:
        running = self.target.running(status.name)
        deployed = {record.agent: record for record in self.store.deployed(status.name)}
        pins = {pin.agent: pin for pin in self.store.pins(status.name)}
        names = set(running) | (set(desired) if desired is not None else set(status.agents))
        agents: dict[str, AgentStatus] = {}
        for name in sorted(names):
            previous = status.agents.get(name)
            wanted = (
                desired[name].version
                if desired is not None and name in desired
                else (previous.desired_version if previous else None)
            )
            serving = running.get(name)
            pin = pins.get(name)
            if pin is not None and serving == pin.version:
                state = "Pinned"
            elif serving is not None and serving == wanted:
                state = "Healthy"
            elif (status.name, name) in self._failed:
                state = self.canaries.failed_state(
                    status.name, name, self._failed[status.name, name]
                )
            else:
                state = "Progressing" if wanted else "Removing"
            record = deployed.get(name)
            labels = (
                dict(desired[name].spec.labels)
                if desired is not None and name in desired
                else (previous.labels if previous else {})
            )
            agents[name] = AgentStatus(
                name=name,
                version=serving,
                desired_version=wanted,
                commit=record.commit if record else None,
                url=self.url(name, status.name) if serving else None,
                state=state,
                message=(
                    pin.reason
                    if pin is not None and state == "Pinned"
                    else previous.message
                    if previous and state in ("Failed", "Aborted")
                    else ""
                ),
                labels=labels,
                since=record.since if record and serving == record.version else None,
                pinned_version=pin.version if pin is not None else None,
                runtime=self.target.process(status.name, name) if serving else None,
            )
        status.agents = agents

    def _agent_message(self, environment: str, agent: str, message: str) -> None:
        status = self.statuses.get(environment)
        if status is not None and agent in status.agents:
            status.agents[agent].message = message
        elif status is not None:
            status.agents[agent] = AgentStatus(agent, None, None, None, None, "Failed", message)

    def url(self, agent: str, environment: str) -> str:
        return naming.preview_url(
            self.config.url_template, agent, environment, self.config.public_port
        )

    def _pins(self, environment: str, desired: dict[str, Agent]) -> dict[str, str]:
        """Pins still in force; a commit that changed an agent lifts its undo pin."""
        pinned: dict[str, str] = {}
        for pin in self.store.pins(environment):
            wanted = desired.get(pin.agent)
            lifts = pin.kind is PinKind.UNDO  # a pause holds until `rollout resume`
            if lifts and wanted is not None and wanted.version != pin.pinned_from:
                self.store.unpin(environment, pin.agent)
                self._event(
                    "Normal",
                    "Unpinned",
                    environment,
                    pin.agent,
                    f"pin on {pin.version} lifted: a commit changed {pin.agent}",
                )
                continue
            pinned[pin.agent] = pin.version
        return pinned

    # Steering (rollout undo / pause / resume) -------------------------------------------

    async def undo(
        self, environment: str, agent: str, to_revision: int | None, actor: str, reason: str
    ) -> Rollout:
        """Roll `agent` back to a recorded revision and pin it there until a new commit."""
        status = self.status_of(environment, agent)
        serving = self.target.running(environment).get(agent)
        chosen = steering.undo_target(self.store, agent, environment, serving, to_revision)
        loaded = await self._in_git(self._load, chosen.commit)
        target_agent = next(
            (a for a in loaded.result.agents if a.name == agent and a.version == chosen.version),
            None,
        )
        if target_agent is None:
            raise Conflict(f"revision {chosen.number} can no longer be loaded from its commit")
        request = await self.driver.prepare(
            drivers.Placement(
                target_agent,
                environment,
                chosen.commit,
                chosen.branch,
                chosen.author,
                chosen.message,
                await self._checkout(chosen.commit),
                secret_access.secrets_for(self, environment, chosen.branch),
            )
        )
        rollout = self.store.begin_rollout(
            agent=agent,
            environment=environment,
            from_version=serving,
            to_version=chosen.version,
            commit=chosen.commit,
            author=actor,
        )
        why = f"undo to revision {chosen.number} by {actor}" + (f": {reason}" if reason else "")
        self._event("Normal", "RollbackStarted", environment, agent, why)
        started = time.monotonic()
        try:
            result = await self.driver.deploy(
                request, float(target_agent.spec.rollout.progress_deadline_seconds)
            )
        except Transient:
            self.open_rollouts.add(rollout, interrupted.API_ERROR)  # the next sync closes it
            raise
        if not result.healthy:
            self.store.finish_rollout(rollout.id, RolloutResult.FAILED, result.message)
            reporting.rollout_finished(self, environment, agent, RolloutResult.FAILED, started)
            self._event("Warning", "RollbackFailed", environment, agent, result.message)
            raise Conflict(f"revision {chosen.number} did not turn healthy: {result.message}")
        self.store.finish_rollout(rollout.id, RolloutResult.HEALTHY, why)
        reporting.rollout_finished(self, environment, agent, RolloutResult.HEALTHY, started)
        self.store.set_deployed(
            Deployed(agent, environment, chosen.version, chosen.commit, chosen.branch, self.clock())
        )
        held = next((p for p in self.store.pins(environment) if p.agent == agent), None)
        self.store.pin(
            Pin(
                environment,
                agent,
                chosen.version,
                status.desired_version,
                actor,
                why,
                self.clock(),
                # An undo while paused stays a pause: only `resume` lifts it.
                held.kind if held is not None else PinKind.UNDO,
            )
        )
        self._failed.pop((environment, agent), None)
        self._event(
            "Normal",
            "RollbackSucceeded",
            environment,
            agent,
            f"revision {chosen.number} ({chosen.version}) is healthy and serving",
        )
        self._refresh_agents(self.statuses[environment], None, status.commit)
        return self.store.rollout(rollout.id)

    def pause(self, environment: str, agent: str, actor: str, reason: str) -> Pin:
        """Hold `agent` at what it serves now; syncing leaves it alone until resumed."""
        status = self.status_of(environment, agent)
        serving = self.target.running(environment).get(agent)
        if serving is None:
            raise Conflict(f"{agent} is not running in {environment}; nothing to pause")
        held = next((p for p in self.store.pins(environment) if p.agent == agent), None)
        if held is not None and held.kind is PinKind.PAUSE:
            raise Conflict(f"{agent} in {environment} is already paused ({held.reason})")
        # A deploy in flight would finish after the pin and serve another version than the
        # one the pause claims to hold (once its traffic has switched, the pin holds it).
        for moving in self.store.open_rollouts(environment):
            if (
                moving.agent == agent
                and moving.to_version != serving
                and not self.open_rollouts.holds(environment, agent)
            ):
                raise Conflict(
                    f"{agent} in {environment} is rolling out {moving.from_version} → "
                    f"{moving.to_version}; pause it once that rollout ends (shipyard rollout "
                    f"status {agent} -e {environment}), then undo if needed"
                )
        pin = Pin(
            environment,
            agent,
            serving,
            status.desired_version,
            actor,
            f"paused by {actor}" + (f": {reason}" if reason else ""),
            self.clock(),
            PinKind.PAUSE,
        )
        self.store.pin(pin)
        self._event("Normal", "Paused", environment, agent, pin.reason)
        self._refresh_agents(self.statuses[environment], None, status.commit)
        return pin

    def resume(self, environment: str, agent: str, actor: str) -> bool:
        """Lift a pause or an undo pin; the next sync brings the branch's version back."""
        self.status_of(environment, agent)
        lifted = self.store.unpin(environment, agent)
        if lifted:
            self._event("Normal", "Resumed", environment, agent, f"resumed by {actor}")
            status = self.statuses[environment]
            if status.commit is not None:
                self._enqueue(environment, status.branch, status.commit)
        return lifted

    def status_of(self, environment: str, agent: str) -> AgentStatus:
        status = self.statuses.get(environment)
        if status is None:
            known = ", ".join(sorted(self.statuses)) or "none"
            raise NotFound(f'environment "{environment}" not found (known: {known})')
        found = status.agents.get(agent)
        if found is None:
            known = ", ".join(sorted(status.agents)) or "none"
            raise NotFound(f'agent "{agent}" not found in {environment} (known: {known})')
        return found

    # Teardown and restore --------------------------------------------------------------

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
        record = records.get(environment)
        if retirement.retire_at is not None:
            self.store.save_environment(
                EnvironmentRecord(
                    environment,
                    record.branch if record is not None else retirement.branch,
                    record.commit if record is not None else retirement.retire_at,
                    record.last_push_at if record is not None else self.clock(),
                    retirement.retire_at,
                )
            )
        else:
            self.store.forget_environment(environment)
        self._pending.pop(environment, None)
        if not retirement.started:
            self._event("Normal", retirement.reason, environment, "", retirement.message)
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
        try:
            for agent in sorted(self.target.running(environment)):
                await self.target.remove(environment, agent)
            await self.driver.teardown(environment)
            interrupted.close(
                self, environment, f"{environment} was torn down ({retirement.reason})"
            )
        except Exception:
            # Its own task: a failure here must be seen, and must not stop the rest.
            log.exception("teardown of %s incomplete", environment)
        self.store.clear_deployed(environment)
        gone = self.statuses.pop(environment, None)
        if gone is not None:
            pr_feedback.report(self, gone, "torn_down")
        self._ttl.pop(environment, None)
        self._reconciled_at.pop(environment, None)
        self._refreshed.discard(environment)
        for key in [key for key in self._failed if key[0] == environment]:
            del self._failed[key]
        self._event(
            "Normal", retirement.reason, environment, "", f"preview torn down: {retirement.message}"
        )

    async def _restore(self) -> None:
        """Start again what ran before a restart, with no new rollouts or revisions."""
        self.open_rollouts.adopt(self.store)
        if not self.driver.restores_from_store:
            return
        by_commit: dict[tuple[str, str], list[Deployed]] = {}
        for record in self.store.deployed():
            by_commit.setdefault((record.environment, record.commit), []).append(record)
        for (environment, sha), records in sorted(by_commit.items()):
            try:
                loaded = await self._in_git(self._load, sha)
                workdir = await self._checkout(sha)
            except ShipyardError as error:
                log.warning("cannot restore %s at %s: %s", environment, sha[:12], error)
                continue
            agents = {agent.name: agent for agent in loaded.result.agents}
            for record in records:
                agent = agents.get(record.agent)
                if agent is None or agent.version != record.version:
                    continue
                placement = drivers.Placement(
                    agent,
                    environment,
                    sha,
                    record.branch,
                    workdir=workdir,
                    secrets=secret_access.secrets_for(self, environment, record.branch),
                )
                try:
                    request = await self.driver.prepare(placement)
                except launching.NotLaunchable:
                    continue
                deadline = float(agent.spec.rollout.progress_deadline_seconds)
                result = await self.driver.restore(request, deadline)
                if not result.healthy:
                    self._event(
                        "Warning",
                        "RestoreFailed",
                        environment,
                        agent.name,
                        f"{agent.version} did not turn healthy after restart",
                    )
            status = self.statuses.setdefault(environment, EnvironmentStatus(environment, ""))
            status.branch = records[0].branch
            self._refresh_agents(status, None, sha)

    def _event(self, type_: str, reason: str, environment: str, agent: str, message: str) -> None:
        self.store.record_event(
            type=type_, reason=reason, message=message, environment=environment, agent=agent
        )
        log.info("%s %s %s/%s: %s", type_, reason, environment, agent or "-", message)

    # Reading ---------------------------------------------------------------------------

    def environments(self) -> list[dict[str, Any]]:
        return [self.statuses[name].as_dict() for name in sorted(self.statuses)]
