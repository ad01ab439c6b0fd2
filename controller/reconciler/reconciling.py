"""One environment's reconcile: load at the commit → plan → apply (health-gated) → record.

Flux's steps for one environment, with typed outcomes (`status.Outcome`): invalid
manifests Stall and keep what runs; a commit with no agents may not empty production;
a target API failure is Transient and leaves its rollouts open to resume. What this needs
of the rest of the reconciler is handed in, one collaborator each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from controller.errors import ShipyardError
from controller.metrics.collector import Metrics
from controller.reconciler import drivers, interrupted, planner
from controller.reconciler.agent_states import AgentStates, Failures
from controller.reconciler.commits import Commits
from controller.reconciler.config import ControllerConfig
from controller.reconciler.deploying import Deployer
from controller.reconciler.pr_feedback import PullRequests
from controller.reconciler.recorder import Recorder
from controller.reconciler.status import EnvironmentStatus, Outcome
from controller.reconciler.target import Target
from controller.specs import loading
from controller.specs.model import Agent
from controller.store.sqlite import Store
from preview import naming

DEFAULT_PREVIEW_TTL = 72 * 3600

Pins = Callable[[str, dict[str, Agent]], dict[str, str]]  # (environment, desired) → pinned
Ready = Callable[[str, str], None]  # (environment, commit): every agent serves its version


class EnvironmentReconciler:
    def __init__(
        self,
        *,
        config: ControllerConfig,
        statuses: dict[str, EnvironmentStatus],
        store: Store,
        commits: Commits,
        target: Target,
        driver: drivers.Driver,
        deployer: Deployer,
        resumer: interrupted.Resumer,
        failures: Failures,
        pins: Pins,
        agent_states: AgentStates,
        pull_requests: PullRequests,
        recorder: Recorder,
        metrics: Metrics,
        on_ready: Ready,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.statuses = statuses
        self.store = store
        self.commits = commits
        self.target = target
        self.driver = driver
        self.deployer = deployer
        self.resumer = resumer
        self.failures = failures
        self.pins = pins
        self.agent_states = agent_states
        self.pull_requests = pull_requests
        self.recorder = recorder
        self.metrics = metrics
        self.on_ready = on_ready
        self.clock = clock
        self._ttl: dict[str, int] = {}
        self._reconciled_at: dict[str, float] = {}
        self._thorough: set[str] = set()  # environments due a full read-back of the target
        self._refreshed: set[str] = set()

    def resync_due(self, environment: str, now: float) -> bool:
        """Periodic resync finds drift even when no commit arrives (as Flux's interval)."""
        return now - self._reconciled_at.get(environment, now) > self.config.resync_interval

    def read_everything_next(self, environment: str) -> None:
        self._thorough.add(environment)

    def ttl_of(self, environment: str) -> int:
        return self._ttl.get(environment, DEFAULT_PREVIEW_TTL)

    def forget(self, environment: str) -> None:
        self._ttl.pop(environment, None)
        self._reconciled_at.pop(environment, None)
        self._refreshed.discard(environment)

    async def reconcile(self, environment: str, branch: str, sha: str) -> Outcome:
        status = self.statuses.setdefault(environment, EnvironmentStatus(environment, branch))
        status.branch = branch
        self._reconciled_at[environment] = self.clock()
        status.set_condition("Reconciling", True, "Progressing", f"reconciling {sha[:12]}")
        try:
            with self.metrics.sync_phase("load"):
                loaded = await self.commits.load(sha)
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
        running = await self.resumer.resume(environment, desired, self.target.running(environment))
        failed = self.failures.of(environment)
        pinned = self.pins(environment, desired)
        with self.metrics.sync_phase("plan"):
            actions = planner.plan(desired, running, failed=failed, pinned=pinned)
        # Status shows the commit and its desired versions together, before rollouts begin.
        self.agent_states.refresh(status, desired, sha)
        self.pull_requests.report(status, "pending")
        apply_started = time.perf_counter()
        deploys = [action for action in actions if isinstance(action, planner.Deploy)]
        workdir = await self.commits.checkout(sha) if deploys else None
        results = await asyncio.gather(
            *(
                self.deployer.deploy(environment, branch, loaded.commit, workdir, action)
                for action in deploys
            )
        )
        for action in actions:
            if isinstance(action, planner.Remove):
                await self.target.remove(environment, action.agent)
                self.store.clear_deployed(environment, action.agent)
                self.recorder.event(
                    "Normal",
                    "AgentRemoved",
                    environment,
                    action.agent,
                    f"{action.agent} {action.current} stopped: no longer declared",
                )
        self.metrics.observe_phase("apply", time.perf_counter() - apply_started)
        self.agent_states.refresh(status, desired, sha)
        if any(result is None for result in results):
            return _retrying(status)
        status.set_condition("Reconciling", False, "Done", f"reconciled {sha[:12]}")
        settled = all(a.rolled_out or a.state == "Pinned" for a in status.agents.values())
        if all(results) and settled:
            status.set_condition("Ready", True, "Succeeded", f"serving commit {sha[:12]}")
            self.pull_requests.report(status, "success")
            self.on_ready(environment, sha)
            return Outcome.READY
        failed_agents = [name for name, agent in status.agents.items() if not agent.rolled_out]
        status.set_condition(
            "Ready",
            False,
            "RolloutFailed",
            f"not healthy: {', '.join(failed_agents)}; waiting for a new commit",
        )
        self.pull_requests.report(status, "failure")
        return Outcome.WAITING

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
        return self._hold(status, "ManifestInvalid", f"invalid manifests: {first}{more}; {serving}")

    def _refuse_empty_production(
        self, status: EnvironmentStatus, sha: str, running: list[str]
    ) -> Outcome:
        """A commit that declares no agents would stop all of production: hold, say why."""
        message = (
            f"commit {sha[:12]} declares no agents; refusing to remove every production agent "
            f"({', '.join(running)}). Restore agents/ or start the controller with "
            "--allow-empty-production to allow it; still serving the last good versions"
        )
        return self._hold(status, "EmptyProduction", message)

    def _hold(self, status: EnvironmentStatus, reason: str, message: str) -> Outcome:
        """Stalled: a human must change the input; what runs keeps running."""
        was_stalled = status.conditions.get("Stalled")
        status.set_condition("Stalled", True, reason, message)
        status.set_condition("Ready", False, reason, message)
        status.set_condition("Reconciling", False, "Stalled", message)
        if was_stalled is None or not was_stalled.status or was_stalled.message != message:
            self.recorder.event("Warning", reason, status.name, "", message)
        self.agent_states.refresh(status, None, status.commit)
        self.pull_requests.report(status, "failure")
        return Outcome.STALLED

    async def _read_back(self, environment: str) -> None:
        # Reading back everything the target runs is for drift, on resyncs and retries, and
        # the first time after a start; a push in between needs only what changed.
        thorough = environment in self._thorough or environment not in self._refreshed
        self._thorough.discard(environment)
        self._refreshed.add(environment)
        for drift in await self.driver.refresh(environment, thorough=thorough):
            self.recorder.event(
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


def _retrying(status: EnvironmentStatus) -> Outcome:
    message = "the target's API failed mid-rollout; retrying with backoff"
    status.set_condition("Reconciling", True, "Retrying", message)
    status.set_condition("Ready", False, "TransientError", message)
    return Outcome.TRANSIENT
