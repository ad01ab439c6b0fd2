"""`shipyard describe agent|environment`: one object in detail, ending with its events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from controller.cli import age, client, common, describe_environment, describing, printers
from controller.errors import ShipyardError


@click.command(name="describe")
@click.argument("resource", metavar="RESOURCE")
@click.argument("name")
@common.environment_option
@client.connection_options
def describe(
    resource: str, name: str, environment: str, server: str | None, token: str | None
) -> None:
    """Show one agent or one environment in detail, ending with its events.

    RESOURCE is `agent` or `environment`. An agent: its spec summary (model, prompt
    source, tools, image or command), the version it runs in every environment with the
    commit, author and message it came from, the environment's conditions, any pin from
    an undo or pause, and its events, repeats folded as "(x5 over 10m)". An environment
    (NAME is the environment; -e is not used): its branch and commit, conditions,
    manifest problems as FILE:LINE:COLUMN, agents, and every event in it.

    \b
    Examples:
      shipyard describe agent support-bot
      shipyard describe agent support-bot -e preview-feature-x
      shipyard describe environment preview-feature-x
      kubectl shipyard describe agent triage
    """
    word = resource.lower()
    if word in ("environment", "environments", "env", "envs"):
        with client.Client(server, token) as api:
            env = api.environment(name)
            events = api.events(name)
        click.echo("\n".join(describe_environment.render(env, events, time.time())))
        return
    if word not in ("agent", "agents", "ag"):
        raise ShipyardError(
            f'cannot describe "{resource}": only agents and environments can be described'
        )
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
        describing.field("Name", agent["name"]),
        describing.field("Environment", described["environment"]),
        describing.field("Description", metadata.get("description")),
        describing.field("Labels", _labels(agent.get("labels") or metadata.get("labels") or {})),
        describing.field("State", agent.get("state")),
        describing.field("Message", agent.get("message")),
        describing.field("Version", agent.get("version")),
        describing.field("Desired", agent.get("desiredVersion")),
        describing.field("Commit", agent.get("commit")),
        describing.field("URL", agent.get("url")),
        describing.field(
            "Serving For", age.since(agent.get("since"), now) if agent.get("since") else None
        ),
        "Spec:",
        *_spec(spec),
        "Environments:",
        *describing.indent(_placement_table(placements, now)),
        "Conditions:",
        *describing.indent(describing.conditions(env.get("conditions") or [])),
        describing.field("Pin", _pin(described.get("pin"), now)),
        *_last_state(described.get("lastState")),
        "Events:" if described.get("events") else describing.field("Events", None),
    ]
    if described.get("events"):
        lines.extend(describing.indent(describing.events_table(described["events"], now)))
    return lines


def _serving_for(since: object, now: float) -> str | None:
    return age.since(since, now) if isinstance(since, int | float | str) and since else None


def _labels(labels: dict[str, str]) -> str | None:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or None


def _spec(spec: dict[str, Any]) -> list[str]:
    if not spec:
        return describing.indent(["<unknown: no revision recorded yet>"])
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
        describing.field("  Model", model_text),
        describing.field("  Prompt", prompt_text),
        describing.field("  Tools", ", ".join(tools) or None),
    ]
    if spec.get("image"):
        rows.append(describing.field("  Image", spec["image"]))
    if run.get("command"):
        rows.append(describing.field("  Command", " ".join(str(part) for part in run["command"])))
    resources = spec.get("resources") or {}
    for kind in ("requests", "limits"):
        if resources.get(kind):
            values = ", ".join(f"{k}={v}" for k, v in resources[kind].items())
            rows.append(describing.field(f"  {kind.capitalize()}", values))
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


def _last_state(ended: dict[str, Any] | None) -> list[str]:
    """kubectl's container `Last State: Terminated` block: how the last instance ended."""
    if not ended:
        return []
    rows = [
        describing.field("Last State", "Terminated"),
        describing.field("  Version", ended.get("version")),
        describing.field("  Reason", ended.get("reason")),
    ]
    if ended.get("signal"):
        rows.append(describing.field("  Signal", ended["signal"]))
    else:
        rows.append(describing.field("  Exit Code", ended.get("exitCode")))
    rows += [
        describing.field("  Started", _rfc1123(ended.get("startedAt"))),
        describing.field("  Finished", _rfc1123(ended.get("finishedAt"))),
    ]
    output = [str(line.get("line", "")) for line in ended.get("output") or []]
    rows.append("  Last Lines:" if output else describing.field("  Last Lines", None))
    rows += describing.indent(output, 4)
    return rows


def _rfc1123(timestamp: object) -> str | None:
    if not isinstance(timestamp, int | float):
        return None
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(timestamp))


def _pin(pin: dict[str, Any] | None, now: float) -> str | None:
    if not pin:
        return None
    # The reason names who set it ("undo to revision 1 by ann: ...", "paused by ann").
    when = age.since(pin.get("created_at"), now)
    reason = pin.get("reason") or f"by {pin.get('actor')}"
    return f"{pin.get('version')} ({when} ago): {reason}"
