"""`shipyard describe agent`: one agent in detail, ending with its events like kubectl."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from controller.cli import age, client, common, printers
from controller.errors import ShipyardError

EVENT_SOURCE = "shipyard-controller"
LABEL_WIDTH = 14


@click.command(name="describe")
@click.argument("resource", metavar="RESOURCE")
@click.argument("name")
@common.environment_option
@client.connection_options
def describe(
    resource: str, name: str, environment: str, server: str | None, token: str | None
) -> None:
    """Show one agent in detail: its spec, versions, conditions, pin and events.

    RESOURCE is `agent`. Shows the spec summary (model, prompt source, tools, image or
    command), the version it runs in every environment with the commit, author and
    message it came from, the environment's conditions, any pin from an undo or pause,
    and its events, repeats folded as "(x5 over 10m)".

    \b
    Examples:
      shipyard describe agent support-bot
      shipyard describe agent support-bot -e preview-feature-x
      kubectl shipyard describe agent triage
    """
    if resource.lower() not in ("agent", "agents", "ag"):
        raise ShipyardError(f'cannot describe "{resource}": only agents can be described')
    with client.Client(server, token) as api:
        described = api.describe(environment, name)
        env = api.environment(environment)
        placements = _placements(api, name)
    now = time.time()
    click.echo("\n".join(render(described, env, placements, now)))


def _placements(api: client.Client, name: str) -> list[dict[str, Any]]:
    """The agent in every environment, with the revision its serving version came from."""
    placements = []
    for agent in api.agents():
        if agent["name"] != name:
            continue
        revisions = api.revisions(name, agent["environment"])
        wanted = agent.get("version") or agent.get("desiredVersion")
        matching = [r for r in revisions if r.get("version") == wanted]
        exact = [r for r in matching if r.get("commit") == agent.get("commit")]
        revision = (exact or matching or [{}])[-1]
        placements.append({**agent, "revision": revision})
    return placements


def render(
    described: dict[str, Any],
    env: dict[str, Any],
    placements: Sequence[dict[str, Any]],
    now: float,
) -> list[str]:
    agent = described["agent"]
    manifest = described.get("manifest") or {}
    metadata = manifest.get("metadata") or {}
    spec = manifest.get("spec") or {}
    lines = [
        _field("Name", agent["name"]),
        _field("Environment", described["environment"]),
        _field("Description", metadata.get("description")),
        _field("Labels", _labels(agent.get("labels") or metadata.get("labels") or {})),
        _field("State", agent.get("state")),
        _field("Message", agent.get("message")),
        _field("Version", agent.get("version")),
        _field("Desired", agent.get("desiredVersion")),
        _field("Commit", agent.get("commit")),
        _field("URL", agent.get("url")),
        _field("Serving For", age.since(agent.get("since"), now) if agent.get("since") else None),
        "Spec:",
        *_spec(spec),
        "Environments:",
        *_indent(_placement_table(placements, now)),
        "Conditions:",
        *_indent(_conditions(env.get("conditions") or [])),
        _field("Pin", _pin(described.get("pin"), now)),
        "Events:" if described.get("events") else _field("Events", None),
    ]
    if described.get("events"):
        lines.extend(_indent(events_table(described["events"], now)))
    return lines


def _field(label: str, value: object) -> str:
    return f"{label + ':':<{LABEL_WIDTH}}{printers.cell(value)}"


def _indent(lines: Sequence[str], by: int = 2) -> list[str]:
    return [" " * by + line for line in lines]


def _labels(labels: dict[str, str]) -> str | None:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or None


def _spec(spec: dict[str, Any]) -> list[str]:
    if not spec:
        return _indent(["<unknown: no revision recorded yet>"])
    model = spec.get("model") or {}
    parameters = model.get("parameters") or {}
    model_text = f"{model.get('provider', '?')}/{model.get('name', '?')}"
    if parameters:
        model_text += " (" + ", ".join(f"{k}={v}" for k, v in parameters.items()) + ")"
    prompt = spec.get("prompt") or {}
    if prompt.get("file"):
        prompt_text = f"file {prompt['file']}"
    elif prompt.get("system") is not None:
        text = str(prompt["system"])
        prompt_text = f"inline, {len(text)} characters: {_abbreviate(text)}"
    else:
        prompt_text = None
    tools = [tool.get("name", "?") for tool in spec.get("tools") or []]
    run = spec.get("run") or {}
    rows = [
        _field("  Model", model_text),
        _field("  Prompt", prompt_text),
        _field("  Tools", ", ".join(tools) or None),
    ]
    if spec.get("image"):
        rows.append(_field("  Image", spec["image"]))
    if run.get("command"):
        rows.append(_field("  Command", " ".join(str(part) for part in run["command"])))
    resources = spec.get("resources") or {}
    for kind in ("requests", "limits"):
        if resources.get(kind):
            values = ", ".join(f"{k}={v}" for k, v in resources[kind].items())
            rows.append(_field(f"  {kind.capitalize()}", values))
    return rows


def _abbreviate(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _placement_table(placements: Sequence[dict[str, Any]], now: float) -> list[str]:
    if not placements:
        return ["<none>"]
    rows = []
    for placement in placements:
        revision = placement["revision"]
        rows.append(
            [
                placement["environment"],
                placement.get("version"),
                placement.get("state"),
                revision.get("number"),
                common.short(placement.get("commit") or revision.get("commit")),
                revision.get("author"),
                age.since(placement.get("since"), now) if placement.get("since") else None,
                common.first_line(revision.get("message")),
            ]
        )
    headers = ("ENVIRONMENT", "VERSION", "STATE", "REVISION", "COMMIT", "AUTHOR", "AGE")
    return printers.table((*headers, "MESSAGE"), rows)


def _conditions(conditions: Sequence[dict[str, Any]]) -> list[str]:
    if not conditions:
        return ["<none>"]
    rows = [[c.get("type"), c.get("status"), c.get("reason"), c.get("message")] for c in conditions]
    return printers.table(("TYPE", "STATUS", "REASON", "MESSAGE"), rows)


def _pin(pin: dict[str, Any] | None, now: float) -> str | None:
    if not pin:
        return None
    # The reason names who set it ("undo to revision 1 by ann: ...", "paused by ann").
    when = age.since(pin.get("created_at"), now)
    reason = pin.get("reason") or f"by {pin.get('actor')}"
    return f"{pin.get('version')} ({when} ago): {reason}"


def events_table(events: Sequence[dict[str, Any]], now: float) -> list[str]:
    """`TYPE REASON AGE FROM MESSAGE`, identical events folded as kubectl does.

    Events with the same type, reason and message count as one, listed at its last
    occurrence with `AGE (xN over FIRST)`.
    """
    folded: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: (e.get("time") or 0, e.get("id") or 0)):
        key = (event.get("type", ""), event.get("reason", ""), event.get("message", ""))
        seen = folded.pop(key, None)
        if seen is None:
            seen = {"first": event.get("time"), "count": 0}
        seen.update(event=event, last=event.get("time"), count=seen["count"] + 1)
        folded[key] = seen  # re-inserted: ordered by last occurrence
    rows = []
    for entry in folded.values():
        event = entry["event"]
        when = age.since(entry["last"], now)
        if entry["count"] > 1:
            when += f" (x{entry['count']} over {age.since(entry['first'], now)})"
        rows.append(
            [event.get("type"), event.get("reason"), when, EVENT_SOURCE, event.get("message")]
        )
    headers = ("TYPE", "REASON", "AGE", "FROM", "MESSAGE")
    # kubectl underlines the headers of describe's events table with dashes.
    return printers.table(headers, [["-" * len(name) for name in headers], *rows])
