"""What a preview looks like to the people reviewing a pull request, independent of the forge.

The controller knows environments, agents and rollouts; a reviewer wants one line in the
checks list, a link, and a table of what runs where. The values here are what the
controller hands over, and the functions turn them into the texts a forge shows (a status
description, one comment body). They are pure so the wording is tested without a server,
and every forge (GitHub, GitLab, Gitea) shows the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

ReportState = Literal["pending", "success", "failure", "torn_down"]
REPORT_STATES: frozenset[str] = frozenset(get_args(ReportState))

# GitHub refuses longer status and deployment-status descriptions with a 422.
MAX_DESCRIPTION = 140
# GitHub's limit for a comment body is 65,536 characters; stay well inside it so a
# repository with thousands of manifest errors still gets its comment.
MAX_COMMENT = 60_000
# Enough to fix the first round of errors; the CLI's `validate` lists all of them.
MAX_LISTED_PROBLEMS = 50
MAX_PROBLEM = 500

_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 object format
_SHORT_SHA = 7
_STATE_ICONS = {
    "pending": "⏳",
    "success": "✅",
    "failure": "❌",
    "torn_down": "🗑️",
}


@dataclass(frozen=True)
class AgentReport:
    """One agent of a preview, as the reviewer sees it."""

    name: str
    version: str | None
    url: str | None
    state: str  # the rollout or health state: Healthy, Progressing, Failed, ...


@dataclass(frozen=True)
class EvalComparison:
    """One golden case on the preview's version beside production's (None: not run there)."""

    agent: str
    suite: str
    case: str
    preview_passed: bool
    preview_latency_ms: float
    preview_reason: str
    production_passed: bool | None
    production_latency_ms: float | None

    @property
    def regressed(self) -> bool:
        """Fails on the preview while production passes it (or production has no result)."""
        return not self.preview_passed and self.production_passed is not False


@dataclass(frozen=True)
class PreviewReport:
    """The state of one preview environment at one commit of a branch."""

    repository: str  # "owner/name"
    branch: str
    sha: str  # the full commit the report is about
    environment: str  # preview-<slug>
    state: ReportState
    agents: tuple[AgentReport, ...]
    problems: tuple[str, ...] = ()  # validation errors, one line each, for failure
    description: str = ""
    evals: tuple[EvalComparison, ...] = ()  # golden cases, once both sides were evaluated
    eval_problems: tuple[str, ...] = ()  # invalid eval suites at this commit, one line each

    def __post_init__(self) -> None:
        if not _REPOSITORY.fullmatch(self.repository):
            raise ValueError(f"repository must look like owner/name, got {self.repository!r}")
        if not _SHA.fullmatch(self.sha):
            raise ValueError(f"sha must be a full lowercase hex commit id, got {self.sha!r}")
        if self.state not in REPORT_STATES:
            raise ValueError(f"state must be one of {sorted(REPORT_STATES)}, got {self.state!r}")
        for field in ("agents", "problems", "evals", "eval_problems"):
            value = getattr(self, field)
            # A bare string would become one problem per character.
            if isinstance(value, str):
                raise TypeError(f"{field} must be a tuple, not a string")
            # Lists are accepted for convenience but stored as tuples, so reports stay
            # hashable and nobody mutates one after it was queued.
            object.__setattr__(self, field, tuple(value))

    @property
    def short_sha(self) -> str:
        return self.sha[:_SHORT_SHA]

    @property
    def url(self) -> str | None:
        """The URL a reviewer should open first: the first agent that has one."""
        return next((agent.url for agent in self.agents if agent.url), None)


def comment_marker(environment: str) -> str:
    """The hidden line that identifies Shipyard's comment for `environment` on a PR.

    Finding the comment by its marker rather than by a stored id is what lets a restarted
    controller (which remembers nothing) keep editing the same comment.
    """
    return f"<!-- shipyard:preview:{environment} -->"


def status_description(report: PreviewReport) -> str:
    """The one line shown next to the commit status and the deployment status."""
    if report.state == "pending":
        text = report.description or f"Deploying {_agents(len(report.agents))}"
    elif report.state == "success":
        text = f"{_agents(len(report.agents))} ready"
    elif report.state == "failure":
        text = _failure_summary(report)
    else:
        text = report.description or "Preview torn down"
    return _clip(_one_line(text), MAX_DESCRIPTION)


def comment_body(report: PreviewReport) -> str:
    """The Markdown of the single pull-request comment for the report's environment."""
    icon = _STATE_ICONS[report.state]
    lines = [
        comment_marker(report.environment),
        f"### {icon} Shipyard preview `{_code(report.environment)}`",
        "",
    ]
    commit = f"commit `{report.short_sha}`"
    if report.state == "torn_down":
        lines.append(f"This preview was torn down. It last ran {commit}.")
        if report.description:
            lines += ["", _one_line(report.description)]
        return "\n".join(lines) + "\n"

    headline = {
        "pending": f"Deploying {commit}…",
        "success": f"Ready at {commit}.",
        "failure": f"Failed at {commit}.",
    }[report.state]
    lines.append(headline)
    if report.description:
        lines += ["", _one_line(report.description)]
    if report.agents:
        lines += ["", "| Agent | Version | URL | State |", "| --- | --- | --- | --- |"]
        lines += [_agent_row(agent) for agent in report.agents]
    if report.problems:
        lines += ["", "**Problems**", "", *_problem_block(report.problems)]
    if report.evals:
        lines += ["", *eval_section(report.evals)]
    if report.eval_problems:
        lines += ["", "**Eval suite problems**", "", *_problem_block(report.eval_problems)]
    body = "\n".join(lines) + "\n"
    return _clip(body, MAX_COMMENT)


EVAL_CONTEXT = "shipyard/evals"


def eval_status(report: PreviewReport) -> tuple[str, str] | None:
    """The `shipyard/evals` commit status (state, description), once there are results.

    Success when the preview passes every case production passes; a case that fails on
    both sides is not the change's doing. Failure too when a suite at the commit is invalid.
    """
    if report.state != "success" or not (report.evals or report.eval_problems):
        return None
    if report.eval_problems:
        more = len(report.eval_problems) - 1
        suffix = f" (+{more} more)" if more else ""
        first = _clip(_one_line(report.eval_problems[0]), MAX_DESCRIPTION - 20 - len(suffix))
        return "failure", f"invalid eval suite: {first}{suffix}"
    regressed = [row for row in report.evals if row.regressed]
    passed = sum(row.preview_passed for row in report.evals)
    total = len(report.evals)
    if regressed:
        names = ", ".join(f"{row.agent}/{row.case}" for row in regressed)
        text = f"{len(regressed)} of {total} cases fail where production passes: {names}"
        return "failure", _clip(text, MAX_DESCRIPTION)
    return "success", _clip(f"{passed} of {total} cases pass", MAX_DESCRIPTION)


def eval_section(rows: tuple[EvalComparison, ...]) -> list[str]:
    """The "Evals" part of the comment: per agent and case, preview beside production."""
    lines = [
        "**Evals**",
        "",
        "| Agent | Case | Preview | Production | Reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        preview = _eval_cell(row.preview_passed, row.preview_latency_ms)
        production = (
            "—"
            if row.production_passed is None or row.production_latency_ms is None
            else _eval_cell(row.production_passed, row.production_latency_ms)
        )
        reason = _cell(_clip(row.preview_reason, MAX_PROBLEM)) if row.preview_reason else ""
        case = f"{_cell(row.suite)}/{_cell(row.case)}"
        lines.append(f"| {_cell(row.agent)} | {case} | {preview} | {production} | {reason} |")
    return lines


def _eval_cell(passed: bool, latency_ms: float) -> str:
    return f"{'✅ pass' if passed else '❌ fail'} ({latency_ms:.0f} ms)"


def _agent_row(agent: AgentReport) -> str:
    version = f"`{_cell(_code(agent.version))}`" if agent.version else "—"
    url = f"<{_cell(agent.url)}>" if agent.url else "—"
    return f"| {_cell(agent.name)} | {version} | {url} | {_cell(agent.state)} |"


def _problem_block(problems: tuple[str, ...]) -> list[str]:
    shown = [_clip(_one_line(problem), MAX_PROBLEM) for problem in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        shown.append(f"… and {len(problems) - MAX_LISTED_PROBLEMS} more")
    # Problems quote manifest text verbatim; a fence longer than any backtick run inside
    # keeps that text from being rendered as Markdown (or closing the block early).
    longest = max((len(run) for line in shown for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *shown, fence]


def _failure_summary(report: PreviewReport) -> str:
    if not report.problems:
        return _one_line(report.description) or "Preview failed"
    more = len(report.problems) - 1
    suffix = f" (+{more} more)" if more else ""
    return _clip(_one_line(report.problems[0]), MAX_DESCRIPTION - len(suffix)) + suffix


def _agents(count: int) -> str:
    return f"{count} agent" if count == 1 else f"{count} agents"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    # A `|` would end the table cell and a newline the row.
    return _one_line(text).replace("|", "\\|")


def _code(text: str) -> str:
    # Inside a code span only a backtick can escape; names and versions never hold one.
    return _one_line(text).replace("`", "'")


class Notifier(Protocol):
    """What the controller needs of a forge's feedback channel (GitHub, GitLab, Gitea)."""

    def submit(self, report: PreviewReport) -> None:
        """Queue a report; never blocks, never raises."""
        ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    def note_pull_request(
        self, repository: str, branch: str, number: int, *, from_fork: bool, labels: Iterable[str]
    ) -> None: ...
