"""Tells pull requests how their previews are doing, through the forge's notifier.

The reconciler calls `report` at the three moments a reviewer cares about: a preview
starts reconciling a commit (pending), finishes (success, or failure with the validation
errors), and goes away (torn down); the evals call it again when their comparison is in.
Production is not reported here.
"""

from __future__ import annotations

from typing import Protocol

from controller.reconciler.status import EnvironmentStatus
from preview import naming
from preview.feedback import AgentReport, EvalComparison, Notifier, PreviewReport, ReportState


class EvalReadings(Protocol):
    """What the report says of evals (`evaluation.Evaluation`)."""

    def comparisons(
        self, environment: str, versions: dict[str, str | None]
    ) -> tuple[EvalComparison, ...]: ...

    def problems_at(self, environment: str, sha: str) -> tuple[str, ...]: ...


class PullRequests:
    def __init__(
        self, notifier: Notifier | None, repository: str | None, evals: EvalReadings
    ) -> None:
        self.notifier = notifier
        self.repository = repository
        self.evals = evals
        self.reported: dict[str, tuple[str, str]] = {}  # environment → (commit, what was said)

    def report(self, status: EnvironmentStatus, state: ReportState) -> None:
        notifier, repository = self.notifier, self.repository
        if notifier is None or repository is None or status.name == naming.PRODUCTION:
            return
        if status.commit is None:
            return
        versions = {agent.name: agent.version for agent in status.agents.values()}
        success = state == "success"
        evals = self.evals.comparisons(status.name, versions) if success else ()
        eval_problems = self.evals.problems_at(status.name, status.commit) if success else ()
        # A periodic resync of an unchanged preview tells the pull request nothing new.
        summary = (
            status.commit,
            state
            + "".join(f"{a.name}{a.version}" for a in status.agents.values())
            + "".join(f"{e.agent}{e.case}{e.preview_passed}{e.production_passed}" for e in evals)
            + "".join(eval_problems),
        )
        if self.reported.get(status.name) == summary:
            return
        self.reported[status.name] = summary
        problems = tuple(
            f"{p['file']}:{p['line']}:{p['column']}: {p['field']}: {p['message']}".replace(
                ": : ", ": "
            )
            for p in status.problems
        )
        notifier.submit(
            PreviewReport(
                repository=repository,
                branch=status.branch,
                sha=status.commit,
                environment=status.name,
                state=state,
                agents=tuple(
                    AgentReport(agent.name, agent.version, agent.url, agent.state)
                    for agent in status.agents.values()
                ),
                problems=problems,
                evals=evals,
                eval_problems=eval_problems,
            )
        )
