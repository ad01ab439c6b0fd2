"""`shipyard describe environment NAME`: why an environment is or is not ready.

Its branch and commit, its conditions, every manifest problem as FILE:LINE:COLUMN (what
stalls it), its agents with their versions and states, and every event recorded in it,
the agents' included, named by agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.cli import age, describing, printers


def render(env: dict[str, Any], events: Sequence[dict[str, Any]], now: float) -> list[str]:
    lines = [
        describing.field("Name", env.get("name")),
        describing.field("Branch", env.get("branch")),
        describing.field("Commit", env.get("commit")),
        "Conditions:",
        *describing.indent(describing.conditions(env.get("conditions") or [])),
        "Problems:" if env.get("problems") else describing.field("Problems", None),
        *describing.indent([_problem(problem) for problem in env.get("problems") or []]),
        "Agents:",
        *describing.indent(_agents(env.get("agents") or [], now)),
    ]
    if not events:
        return [*lines, describing.field("Events", None)]
    named = [{**event, "message": _about(event)} for event in events]
    return [*lines, "Events:", *describing.indent(describing.events_table(named, now))]


def _problem(problem: dict[str, Any]) -> str:
    where = f"{problem.get('file')}:{problem.get('line')}:{problem.get('column')}"
    field = problem.get("field")
    return (
        f"{where}: {field}: {problem.get('message')}"
        if field
        else f"{where}: {problem.get('message')}"
    )


def _agents(agents: Sequence[dict[str, Any]], now: float) -> list[str]:
    if not agents:
        return ["<none>"]
    rows = [
        [
            agent.get("name"),
            agent.get("version"),
            agent.get("desiredVersion"),
            agent.get("state"),
            bool(agent.get("ready")),
            age.since(agent.get("since"), now) if agent.get("since") else None,
        ]
        for agent in agents
    ]
    return printers.table(("NAME", "VERSION", "DESIRED", "STATE", "READY", "AGE"), rows)


def _about(event: dict[str, Any]) -> str:
    agent = event.get("agent")
    return f"agent/{agent}: {event.get('message')}" if agent else str(event.get("message"))
