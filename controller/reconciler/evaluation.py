"""When an environment turns ready, evaluate its agents (a preview's beside production's).

The reconciler calls `Evaluation.environment_ready` with one line and moves on: suites are
read from the commit on the git thread and runs happen on the runner's own tasks. When a
preview's and production's results are both in, the pull request is told again, now with
the comparison. Which version each (environment, agent) was last evaluated at is kept
here, for the API, the CLI and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controller.reconciler.commits import Commits
from controller.reconciler.eval_runs import Endpoint, EvalRequest, EvalRunner, PodEndpoint
from controller.reconciler.status import EnvironmentStatus
from controller.specs import evalsuites
from controller.store.eval_results import CaseResult, EvalResults
from controller.store.sqlite import Store
from preview import naming
from preview.feedback import EvalComparison

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluated:
    """The version of an agent in an environment that suites were run on, and which ones."""

    version: str
    digests: dict[str, str]  # suite name → digest


class Evaluation:
    def __init__(
        self,
        runner: EvalRunner,
        *,
        statuses: Mapping[str, EnvironmentStatus],
        store: Store,
        commits: Commits,
        url: Callable[[str, str], str],
        public_port: int,
        pod_endpoint: PodEndpoint | None = None,
    ) -> None:
        self.runner = runner
        self.pod_endpoint = pod_endpoint  # set on Kubernetes (`KubernetesTarget`)
        self.statuses = statuses
        self.store = store
        self.commits = commits
        self.url = url  # (agent, environment) → the agent's URL through the router
        self.public_port = public_port
        # Called with a preview's status once its comparison with production is in.
        self.on_compared: Callable[[EnvironmentStatus], None] = lambda status: None
        self.evaluated: dict[tuple[str, str], Evaluated] = {}  # (environment, agent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: dict[str, str] = {}  # environment → the commit last evaluated
        # Environment → (commit, its suites' problems at that commit).
        self._problems: dict[str, tuple[str, tuple[str, ...]]] = {}

    @property
    def results(self) -> EvalResults:
        return self.runner.results

    def environment_ready(self, environment: str, sha: str) -> None:
        """`environment` serves `sha`: evaluate it (a preview also against production).

        Once per (environment, commit): the periodic resyncs of an unchanged environment
        start nothing.
        """
        if self._started.get(environment) == sha:
            return
        self._started[environment] = sha
        task = asyncio.create_task(self._start(environment, sha), name=f"evals {environment}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def problems_at(self, environment: str, sha: str) -> tuple[str, ...]:
        """The problems of `environment`'s suites at `sha` (none known for another commit)."""
        known = self._problems.get(environment)
        return known[1] if known is not None and known[0] == sha else ()

    def case_results(self, environment: str, agent: str) -> tuple[str, list[CaseResult]] | None:
        """The version last evaluated in `environment` and its results, if any."""
        evaluated = self.evaluated.get((environment, agent))
        if evaluated is None:
            return None
        return evaluated.version, self.results.results(agent, evaluated.version, evaluated.digests)

    def comparisons(
        self, environment: str, versions: dict[str, str | None]
    ) -> tuple[EvalComparison, ...]:
        """Per agent and case of `environment`: its result beside production's.

        Only for the `versions` (agent → version) the environment runs now: a new push's
        report must not carry the verdict on the version it replaces.
        """
        rows: list[EvalComparison] = []
        for (env, agent), evaluated in sorted(self.evaluated.items()):
            if env != environment or versions.get(agent) != evaluated.version:
                continue
            preview = self.results.results(agent, evaluated.version, evaluated.digests)
            serving = self.evaluated.get((naming.PRODUCTION, agent))
            production = (
                {
                    (r.suite, r.case): r
                    for r in self.results.results(agent, serving.version, evaluated.digests)
                }
                if serving is not None
                else {}
            )
            for result in preview:
                base = production.get((result.suite, result.case))
                rows.append(_comparison(agent, result, base))
        return tuple(rows)

    def case_counts(self) -> dict[tuple[str, str, str, str], int]:
        """(agent, environment, version, pass|fail) → cases, for the metrics."""
        counts: dict[tuple[str, str, str, str], int] = {}
        self._forget_gone()
        for (environment, agent), evaluated in self.evaluated.items():
            for result in self.results.results(agent, evaluated.version, evaluated.digests):
                key = (agent, environment, evaluated.version, "pass" if result.passed else "fail")
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _forget_gone(self) -> None:
        """Torn-down previews take their series and results with them, as everywhere else."""
        live = set(self.statuses)
        for key in [key for key in self.evaluated if key[0] not in live]:
            del self.evaluated[key]
        for environment in [name for name in self._started if name not in live]:
            del self._started[environment]
            self._problems.pop(environment, None)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runner.wait_idle()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runner.close()
        self.results.close()

    async def _start(self, environment: str, sha: str) -> None:
        status = self.statuses.get(environment)
        if status is None:
            return
        try:
            loaded = await self.commits.in_git(self._suites, environment, sha)
        except Exception:
            log.exception("reading eval suites at %s failed", sha[:12])
            return
        if not loaded and not self.problems_at(environment, sha):
            return  # no suites: nothing to run, nothing to report
        # Production's rows only: every environment's would make each push O(environments).
        production = {
            record.agent: record.version for record in self.store.deployed(naming.PRODUCTION)
        }
        runs = []
        for agent, suites in loaded.items():
            version = status.agents[agent].version
            if version is None:
                continue
            runs.append(self._submit(environment, agent, version, suites))
            if environment != naming.PRODUCTION and agent in production:
                runs.append(self._submit(naming.PRODUCTION, agent, production[agent], suites))
        if not runs and not self.problems_at(environment, sha):
            return
        await asyncio.gather(*runs, return_exceptions=True)
        report = self.statuses.get(environment)
        if environment != naming.PRODUCTION and report is not None and report.commit == sha:
            self.on_compared(report)

    def _suites(self, environment: str, sha: str) -> dict[str, tuple[evalsuites.Suite, ...]]:
        """The commit's valid suites by agent; their problems are kept for the pull request."""
        # Every agent the commit declares (cached by content), not only those it previews.
        declared = self.commits.load_now(sha)
        names = {agent.name for agent in declared.result.agents}
        result = evalsuites.collect(declared.tree, names)
        for problem in result.problems:
            log.warning("eval suite problem: %s", problem.render())
        self._problems[environment] = (sha, tuple(p.render() for p in result.problems))
        by_agent: dict[str, list[evalsuites.Suite]] = {}
        for suite in result.suites:
            by_agent.setdefault(suite.agent, []).append(suite)
        return {agent: tuple(suites) for agent, suites in by_agent.items()}

    def _submit(
        self, environment: str, agent: str, version: str, suites: tuple[evalsuites.Suite, ...]
    ) -> asyncio.Task[None]:
        self.evaluated[(environment, agent)] = Evaluated(
            version, {suite.name: suite.digest for suite in suites}
        )
        return self.runner.submit(
            EvalRequest(agent, version, self._endpoint(environment, agent, version), suites)
        )

    def _endpoint(self, environment: str, agent: str, version: str) -> Endpoint:
        """Production on Kubernetes at a ready pod of its own, as the eval gate calls it
        (so the gate compares answers reached alike, never through a public host the
        controller may not resolve); everything else through its URL."""
        if self.pod_endpoint is not None and environment == naming.PRODUCTION:
            found = self.pod_endpoint(environment, agent, version, canary=False)
            if found is not None:
                return Endpoint(found)
        return Endpoint.through_router(self.url(agent, environment), self.public_port)


def _comparison(agent: str, result: CaseResult, base: CaseResult | None) -> EvalComparison:
    return EvalComparison(
        agent=agent,
        suite=result.suite,
        case=result.case,
        preview_passed=result.passed,
        preview_latency_ms=result.latency_ms,
        preview_reason=result.reason,
        production_passed=None if base is None else base.passed,
        production_latency_ms=None if base is None else base.latency_ms,
    )
