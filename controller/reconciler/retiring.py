"""Which previews go (branch deleted, merged, expired, over the cap), and tearing one down.

The decisions read git and the store and hand each retirement to the loop's `begin`
(which marks it in the store at once and schedules the teardown in a task of its own, so
production's reconcile never waits); `tear_down` is that task's work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from controller.errors import ShipyardError
from controller.reconciler import drivers, interrupted, lifecycle
from controller.reconciler.agent_states import Failures
from controller.reconciler.commits import Commits
from controller.reconciler.config import ControllerConfig
from controller.reconciler.pr_feedback import PullRequests
from controller.reconciler.recorder import Recorder
from controller.reconciler.status import EnvironmentStatus
from controller.reconciler.target import Target
from controller.store.records import EnvironmentRecord
from controller.store.sqlite import Store
from preview import naming

log = logging.getLogger("shipyard.reconciler")

Wanted = dict[str, tuple[str, str]]  # environment → (branch, commit)
Begin = Callable[[lifecycle.Retirement, dict[str, EnvironmentRecord]], None]


class Retirer:
    def __init__(
        self,
        *,
        config: ControllerConfig,
        store: Store,
        target: Target,
        driver: drivers.Driver,
        commits: Commits,
        statuses: dict[str, EnvironmentStatus],
        resumer: interrupted.Resumer,
        failures: Failures,
        pull_requests: PullRequests,
        recorder: Recorder,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.store = store
        self.target = target
        self.driver = driver
        self.commits = commits
        self.statuses = statuses
        self.resumer = resumer
        self.failures = failures
        self.pull_requests = pull_requests
        self.recorder = recorder
        self.clock = clock

    async def retire(
        self,
        wanted: Wanted,
        *,
        into: str,
        ttl_of: Callable[[str], int],
        started: Callable[[], set[str]],
        begin: Begin,
    ) -> None:
        """Hand `begin` every preview to take down; `into` is the default branch."""
        records = self.store.environment_records()
        known = set(records) | self.target.environments() | set(self.statuses)
        for retirement in lifecycle.deleted(known, wanted):
            begin(retirement, records)
        for retirement in await self._merged(wanted, records, into):
            begin(retirement, records)
        records = self.store.environment_records()
        for retirement in lifecycle.expired(records, ttl_of, self.clock()):
            begin(retirement, records)
        records = self.store.environment_records()
        if len(lifecycle.live(wanted, records)) <= self.config.max_previews:
            return
        times = await self.commits.in_git(self.commits.mirror.branch_times)
        for retirement in lifecycle.over_cap(
            wanted,
            records,
            cap=self.config.max_previews,
            now=self.clock(),
            commit_times=times,
            started=started(),
        ):
            begin(retirement, records)

    async def _merged(
        self, wanted: Wanted, records: Mapping[str, EnvironmentRecord], into: str
    ) -> list[lifecycle.Retirement]:
        production = wanted.get(naming.PRODUCTION)
        previous = records.get(naming.PRODUCTION)
        found = await self._merged_before_seen(wanted, records, into)
        if not production or not previous or production[1] == previous.commit:
            return found
        mirror, in_git = self.commits.mirror, self.commits.in_git
        try:
            now_in = await in_git(mirror.branches_contained_in, production[1])
            was_in = await in_git(mirror.branches_contained_in, previous.commit)
        except ShipyardError as error:  # the old commit vanished in a force-push
            log.warning("merge detection skipped: %s", error)
            return found
        for environment, branch, sha, seen in lifecycle.merge_candidates(
            wanted, records, now_in, was_in
        ):
            try:
                # Nothing of its own when last seen (it pointed into the old production):
                # moved along with production, not merged.
                if await in_git(mirror.is_ancestor, seen, previous.commit):
                    continue
            except ShipyardError as error:
                log.warning("merge detection skipped %s: %s", branch, error)
                continue
            found.append(lifecycle.merged(environment, branch, sha, into))
        return found

    async def _merged_before_seen(
        self, wanted: Wanted, records: Mapping[str, EnvironmentRecord], into: str
    ) -> list[lifecycle.Retirement]:
        """Branches production had merged before this controller ever saw them."""
        production = wanted.get(naming.PRODUCTION)
        unseen = set(wanted) - set(records) - {naming.PRODUCTION}
        if not production or not unseen:
            return []
        mirror, in_git = self.commits.mirror, self.commits.in_git
        try:
            contained = await in_git(mirror.branches_contained_in, production[1])
            if not any(wanted[environment][0] in contained for environment in unseen):
                return []
            mainline = await in_git(mirror.first_parent_history, production[1])
        except ShipyardError as error:
            log.warning("merge detection skipped: %s", error)
            return []
        started = set(self.statuses) | self.target.environments()
        return lifecycle.merged_before_seen(
            wanted, records, contained, mainline, into=into, started=started
        )

    def mark(self, retirement: lifecycle.Retirement, record: EnvironmentRecord | None) -> None:
        """Record `retirement` in the store: retired at a commit, or forgotten."""
        environment = retirement.environment
        if retirement.retire_at is None:
            self.store.forget_environment(environment)
            return
        self.store.save_environment(
            EnvironmentRecord(
                environment,
                record.branch if record is not None else retirement.branch,
                record.commit if record is not None else retirement.retire_at,
                record.last_push_at if record is not None else self.clock(),
                retirement.retire_at,
            )
        )

    async def tear_down(self, environment: str, retirement: lifecycle.Retirement) -> None:
        try:
            for agent in sorted(self.target.running(environment)):
                await self.target.remove(environment, agent)
            await self.driver.teardown(environment)
            self.resumer.close(environment, f"{environment} was torn down ({retirement.reason})")
        except Exception:
            # Its own task: a failure here must be seen, and must not stop the rest.
            log.exception("teardown of %s incomplete", environment)
        self.store.clear_deployed(environment)
        gone = self.statuses.pop(environment, None)
        if gone is not None:
            self.pull_requests.report(gone, "torn_down")
        self.failures.forget(environment)
        self.recorder.event(
            "Normal", retirement.reason, environment, "", f"preview torn down: {retirement.message}"
        )
