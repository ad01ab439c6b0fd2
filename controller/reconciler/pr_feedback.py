"""Tells pull requests how their previews are doing, through the forge's notifier.

The reconciler calls these at the three moments a reviewer cares about: a preview
starts reconciling a commit (pending), finishes (success, or failure with the
validation errors), and goes away (torn down). Production is not reported here. It also
decides whether a pull request's preview may receive secrets (not a fork's, unless
trusted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preview import naming
from preview.feedback import AgentReport, PreviewReport, ReportState

if TYPE_CHECKING:
    from controller.reconciler.controller import Controller
    from controller.reconciler.status import EnvironmentStatus


def report(controller: Controller, status: EnvironmentStatus, state: ReportState) -> None:
    notifier, repository = controller.notifier, controller.repository
    if notifier is None or repository is None or status.name == naming.PRODUCTION:
        return
    if status.commit is None:
        return
    versions = {agent.name: agent.version for agent in status.agents.values()}
    evals = controller.evaluation.comparisons(status.name, versions) if state == "success" else ()
    eval_problems = (
        controller.evaluation.problems_at(status.name, status.commit) if state == "success" else ()
    )
    # A periodic resync of an unchanged preview tells the pull request nothing new.
    summary = (
        status.commit,
        state
        + "".join(f"{a.name}{a.version}" for a in status.agents.values())
        + "".join(f"{e.agent}{e.case}{e.preview_passed}{e.production_passed}" for e in evals)
        + "".join(eval_problems),
    )
    if controller.reported.get(status.name) == summary:
        return
    controller.reported[status.name] = summary
    problems = tuple(
        f"{p['file']}:{p['line']}:{p['column']}: {p['field']}: {p['message']}".replace(": : ", ": ")
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


def secrets_withheld(controller: Controller, environment: str, branch: str) -> bool:
    """A preview of a fork's pull request gets no secrets unless a maintainer labels it.

    Code from a fork is written by someone without write access to the repository. What
    webhooks said of pull requests is kept in the store, so a restart changes nothing,
    and it is read with or without a forge token configured.
    """
    if environment == naming.PRODUCTION:
        return False
    label = controller.config.trusted_label.casefold()
    return any(
        request.from_fork and label not in request.labels
        for request in controller.store.review_requests(branch)
    )
