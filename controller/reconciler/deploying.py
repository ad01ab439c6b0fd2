"""One agent version rolled out in one environment: recorded, deployed, judged, recorded.

The revision, the rollout record and its start event are written in one transaction
before anything changes on the target; the health verdict (or a canary's analysis)
decides how the record ends. A target API failure leaves the record open for the next
reconcile to resume (`interrupted`), never half-written.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from controller.errors import Transient
from controller.metrics.windows import RequestWindows
from controller.reconciler import canary, canary_deploy, drivers, interrupted, launching, planner
from controller.reconciler.agent_states import AgentStates, Failures
from controller.reconciler.eval_gate import EvalGate
from controller.reconciler.prometheus_analysis import Prometheus
from controller.reconciler.recorder import Recorder
from controller.reconciler.secret_access import SecretAccess
from controller.reconciler.status import EnvironmentStatus
from controller.source import mirror as mirrors
from controller.store.records import Deployed, Rollout, RolloutResult
from controller.store.sqlite import Store

T = TypeVar("T")


class Deployer:
    def __init__(
        self,
        *,
        driver: drivers.Driver,
        store: Store,
        recorder: Recorder,
        secrets: SecretAccess,
        failures: Failures,
        canaries: canary.Book,
        windows: RequestWindows,
        open_rollouts: interrupted.OpenRollouts,
        statuses: Mapping[str, EnvironmentStatus],
        clock: Callable[[], float],
        eval_gate: EvalGate,
        prometheus: Prometheus | None = None,
    ) -> None:
        self.driver = driver
        self.store = store
        self.recorder = recorder
        self.secrets = secrets
        self.failures = failures
        self.canaries = canaries
        self.windows = windows
        self.open_rollouts = open_rollouts
        self.statuses = statuses
        self.clock = clock
        self.eval_gate = eval_gate
        self.prometheus = prometheus  # for analyses with PromQL queries
        # A deploy's store records are written here, in order, off the event loop.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-store")

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.shutdown)  # records queued are written first
        if self.prometheus is not None:
            await self.prometheus.close()

    async def _in_store(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)

    async def deploy(
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
        placement = drivers.Placement(
            agent,
            environment,
            commit.sha,
            branch,
            commit.author,
            commit.message,
            workdir,
            secrets=self.secrets.for_rollout(environment, branch),
        )
        try:
            request = await self.driver.prepare(placement)
        except launching.NotLaunchable as error:
            self.failures.mark(environment, agent.name, agent.version)
            self.recorder.event("Warning", "NotLaunchable", environment, agent.name, str(error))
            AgentStates.say(self.statuses.get(environment), agent.name, str(error))
            return False
        rollout = await self._in_store(self._open_rollout, environment, branch, commit, action)
        deadline = float(agent.spec.rollout.progress_deadline_seconds)
        started = time.monotonic()
        aborted = False
        gated = self.eval_gate.applies(agent, environment)
        try:
            if canary_deploy.applies(agent, action.current, self.driver, gated=gated):
                assert action.current is not None
                outcome = await canary_deploy.deploy(
                    driver=self.driver,
                    store=self.store,
                    book=self.canaries,
                    windows=self.windows,
                    agent=agent,
                    request=request,
                    stable=action.current,
                    deadline_seconds=deadline,
                    rollout_id=rollout.id,
                    prometheus=self.prometheus,
                    gate=self.eval_gate.for_rollout(agent, environment, commit.sha, action.current),
                )
                result, aborted = outcome.result, outcome.aborted
            else:
                if gated:
                    self._say_ungated(environment, agent.name, action.current)
                result = await self.driver.deploy(request, deadline)
        except Transient as error:
            self.open_rollouts.add(rollout, interrupted.API_ERROR)
            message = f"{agent.version}: {error}; the rollout stays open and is retried"
            self.recorder.event("Warning", "RolloutRetrying", environment, agent.name, message)
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
            self.failures.clear(environment, agent.name)
            return True
        self._record_failed(
            environment, action, rollout, result.message, aborted=aborted, started=started
        )
        return False

    def _say_ungated(self, environment: str, agent: str, stable: str | None) -> None:
        """requireEvals asked for a gate this rollout cannot have: say so, do not hide it."""
        why = (
            "there is no stable version to compare against (a first deploy)"
            if stable is None
            else "the gate runs only where the new version can run beside the stable one "
            "(the local and Kubernetes targets)"
        )
        kind = "Normal" if stable is None else "Warning"
        self.recorder.event(
            kind, "EvalGateSkipped", environment, agent, f"requireEvals not applied: {why}"
        )

    def _record_failed(
        self,
        environment: str,
        action: planner.Deploy,
        rollout: Rollout,
        message: str,
        *,
        aborted: bool,
        started: float,
    ) -> None:
        agent = action.agent
        self.failures.mark(environment, agent.name, agent.version)
        if aborted:
            reason = f"{message}; all traffic back on {action.current}"
            ended = RolloutResult.ABORTED
        elif action.current is not None:
            reason = f"{message}; rolled back: {action.current} keeps serving"
            ended = RolloutResult.ROLLED_BACK
        else:
            reason = message
            ended = RolloutResult.FAILED
        self.store.finish_rollout(rollout.id, ended, reason)
        self.recorder.rollout_finished(environment, agent.name, ended, started)
        self.recorder.event(
            "Warning",
            "RolloutAborted" if aborted else "RolloutFailed",
            environment,
            agent.name,
            f"{agent.version} {'aborted' if aborted else 'failed'}: {reason}",
        )
        AgentStates.say(self.statuses.get(environment), agent.name, reason)

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
            self.recorder.event(
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
            self.recorder.rollout_finished(
                environment, agent.name, RolloutResult.HEALTHY, started, commit=commit.sha
            )
            self.store.set_deployed(
                Deployed(agent.name, environment, agent.version, commit.sha, branch, self.clock())
            )
            self.recorder.event(
                "Normal",
                "RolloutSucceeded",
                environment,
                agent.name,
                f"{agent.version} is healthy and serving",
            )
