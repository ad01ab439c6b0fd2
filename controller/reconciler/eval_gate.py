"""The eval gate: `spec.rollout.requireEvals` in production, before a new version takes over.

Once the new version runs healthy beside the stable one (taking no traffic yet), the
agent's suites at the new commit run on both. On the local target: the stable version
through the router (which sends it everything at weight 0), the new one on its own
loopback port. On Kubernetes (`PodEndpoint`): each version at a ready pod of its own
Deployment, `podIP:containerPort` (the canary Deployment's for the new one); the stable
one through its public URL when no stable pod is known (after a restart). A case
that passes on stable and fails on the new version is a regression: the verdict Fails
and the rollout is aborted like any failed analysis. Cases that already failed on stable
do not block (the gate guards against getting worse, as the pull request's check does).
A version that could not be reached has no result (nothing is cached for it): the new
version then fails the gate, and a stable version without results is taken to pass.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from controller.reconciler.canary_analysis import Result, Verdict
from controller.reconciler.commits import Commits
from controller.reconciler.eval_runs import Endpoint, EvalRequest, EvalRunner, PodEndpoint
from controller.reconciler.target import Target
from controller.specs import evalsuites
from controller.specs.model import Agent
from controller.store.eval_results import CaseResult
from preview import naming

MAX_NAMED = 5  # regressions named in the verdict; the rest are counted
# How long the new version's ready pod may take to reach the watched cache once its
# Deployment is available (the pod watch and the Deployment watch are separate streams).
POD_WAIT_SECONDS = 30.0
POD_POLL_SECONDS = 0.1


class EvalGate:
    def __init__(
        self,
        *,
        commits: Commits,
        runner: EvalRunner,
        target: Target,
        url: Callable[[str, str], str],
        public_port: int,
        pod_endpoint: PodEndpoint | None = None,
    ) -> None:
        self.pod_endpoint = pod_endpoint  # set on Kubernetes (`KubernetesTarget`)
        self.commits = commits
        self.runner = runner
        self.target = target
        self.url = url  # (agent, environment) → its URL through the router
        self.public_port = public_port

    def applies(self, agent: Agent, environment: str) -> bool:
        return environment == naming.PRODUCTION and agent.spec.rollout.require_evals

    def for_rollout(
        self, agent: Agent, environment: str, sha: str, stable: str
    ) -> Callable[[], Awaitable[Verdict]] | None:
        """The gate a rollout of `agent` from `stable` must pass, if it has one."""
        if not self.applies(agent, environment):
            return None
        return functools.partial(self.judge, agent.name, agent.version, environment, sha, stable)

    async def judge(
        self, agent: str, version: str, environment: str, sha: str, stable: str
    ) -> Verdict:
        suites = await self.commits.in_git(self._suites, sha, agent)
        if not suites:
            return Verdict(Result.PASSED, f"no eval suites for {agent} at {sha[:12]}")
        canary = next(
            (
                found.serving
                for found in self.target.canaries()
                if (found.serving.environment, found.serving.agent) == (environment, agent)
            ),
            None,
        )
        if canary is None or canary.version != version:
            return Verdict(Result.FAILED, f"{version} is not running beside {stable}")
        through_router = Endpoint.through_router(self.url(agent, environment), self.public_port)
        if self.pod_endpoint is None:
            stable_at, new_at = through_router, Endpoint(f"http://127.0.0.1:{canary.port}")
        else:
            found = await self._pod(environment, agent, version)
            if found is None:
                return Verdict(
                    Result.FAILED, f"no ready pod of {version} answered within the gate's wait"
                )
            new_at = Endpoint(found)
            stable_pod = self.pod_endpoint(environment, agent, stable, canary=False)
            stable_at = Endpoint(stable_pod) if stable_pod else through_router
        await asyncio.gather(
            self.runner.submit(EvalRequest(agent, stable, stable_at, suites)),
            self.runner.submit(EvalRequest(agent, version, new_at, suites)),
        )
        digests = {suite.name: suite.digest for suite in suites}
        before = self.runner.results.results(agent, stable, digests)
        after = self.runner.results.results(agent, version, digests)
        cases = [(suite.name, case.name) for suite in suites for case in suite.cases]
        return verdict(before, after, stable, cases)

    async def _pod(self, environment: str, agent: str, version: str) -> str | None:
        """The new version's ready canary pod, waited for briefly (see POD_WAIT_SECONDS)."""
        assert self.pod_endpoint is not None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + POD_WAIT_SECONDS
        while True:
            found = self.pod_endpoint(environment, agent, version, canary=True)
            if found is not None or loop.time() >= give_up:
                return found
            await asyncio.sleep(POD_POLL_SECONDS)

    def _suites(self, sha: str, agent: str) -> tuple[evalsuites.Suite, ...]:
        """On the git thread: the valid suites of `agent` at `sha` (problems are the
        preview's to report; an invalid suite gates nothing)."""
        loaded = self.commits.load_now(sha)
        names = {declared.name for declared in loaded.result.agents}
        found = evalsuites.collect(loaded.tree, names)
        return tuple(suite for suite in found.suites if suite.agent == agent)


def verdict(
    before: list[CaseResult],
    after: list[CaseResult],
    stable: str,
    cases: list[tuple[str, str]],
) -> Verdict:
    """Failed when a case passing on the stable version (`before`) fails `after`. A case
    the new version has no result for (it could not be reached) fails; a case stable has
    no result for counts as passing there: no baseline never lets a failure through."""
    was = {(r.suite, r.case): r.passed for r in before}
    now = {(r.suite, r.case): r for r in after}
    regressions: list[str] = []
    for key in cases:
        result = now.get(key)
        if result is None:
            regressions.append(f"{key[0]}/{key[1]}: not evaluated (the version was not reached)")
        elif not result.passed and was.get(key, True):
            unknown = "" if key in was else f" (no result on {stable})"
            regressions.append(f"{key[0]}/{key[1]}: {result.reason}{unknown}")
    if regressions:
        named = "; ".join(regressions[:MAX_NAMED])
        more = f" (and {len(regressions) - MAX_NAMED} more)" if len(regressions) > MAX_NAMED else ""
        return Verdict(
            Result.FAILED,
            f"{len(regressions)} case(s) passing on {stable} fail: {named}{more}",
        )
    passing = sum(1 for key in cases if key in now and now[key].passed)
    return Verdict(
        Result.PASSED, f"{passing}/{len(cases)} cases pass; none passing on {stable} fails"
    )
