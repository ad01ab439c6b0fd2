"""`shipyard replay`: recorded requests of one environment answered by another's version.

The question before a merge: does the preview answer production's real questions as
production did? Replay runs in the controller (it reaches both agents' processes); this
command asks for it and prints, per request, both statuses and latencies, whether the
answer changed and a diff of the bodies that did, then a summary.
"""

from __future__ import annotations

import json
from typing import Any

import click

from controller.cli import client, durations, printers
from controller.cli.requests_command import latency


@click.command(name="replay")
@click.argument("agent")
@click.option("--from", "from_", required=True, metavar="ENV", help="Environment recorded in.")
@click.option("--to", "to", required=True, metavar="ENV", help="Environment to replay into.")
@click.option("--last", type=click.IntRange(1, 1000), help="Only the newest N recorded requests.")
@click.option(
    "--since",
    callback=durations.option_callback,
    metavar="DURATION",
    help="Only requests recorded in this last while (10m, 2h).",
)
@click.option(
    "--timeout",
    callback=durations.option_callback,
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="How long to wait for each answer.",
)
@click.option(
    "--allow-production",
    is_flag=True,
    help="Allow replaying into production (recorded requests may have side effects).",
)
@click.option("-o", "--output", type=click.Choice(["json"]), help="The full result as JSON.")
@client.connection_options
def replay(
    agent: str,
    *,
    from_: str,
    to: str,
    last: int | None,
    since: float | None,
    timeout: float,
    allow_production: bool,
    output: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """Replay recorded requests of AGENT against another environment and compare answers.

    Sends requests recorded in one environment to the version serving in another and
    compares the answers: statuses, bodies (JSON compared as values), latencies. Needs
    `spec.observability.record.enabled` on the recorded version and a
    write token (replay sends traffic).

    \b
    Examples:
      shipyard replay support-bot --from production --to preview-feature-x
      shipyard replay support-bot --from production --to preview-feature-x --last 20 -o json
      shipyard replay triage --from preview-a --to production --allow-production --since 1h
    """
    if to == "production" and not allow_production:
        raise click.UsageError(
            "replaying into production sends recorded requests to the production agent; "
            "pass --allow-production to do it"
        )
    body: dict[str, Any] = {
        "from": from_,
        "timeoutSeconds": timeout,
        "allowProduction": allow_production,
    }
    if last is not None:
        body["last"] = last
    if since is not None:
        body["since"] = since
    path = f"/api/v1/environments/{client.segment(to)}/agents/{client.segment(agent)}/replay"
    with client.Client(server, token) as api:
        # The controller answers once every request was replayed; each has `timeout`.
        result = api.post(path, body, timeout=None)
    if output == "json":
        click.echo(json.dumps(result, indent=4))
        return
    items = result.get("items") or []
    if not items:
        click.echo(f"No recorded requests of {agent} in {from_}.", err=True)
        return
    printers.echo_lines(render(items, result.get("summary") or {}))


def render(items: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    headers = ("#", "METHOD", "PATH", "FROM", "TO", "FROM LATENCY", "TO LATENCY", "CHANGED")
    rows = []
    for number, item in enumerate(items, 1):
        request, before, after = item["request"], item["from"], item["to"]
        rows.append(
            [
                number,
                request.get("method"),
                request.get("path"),
                before.get("status"),
                after.get("status") if not item.get("failed") else "failed",
                latency(before.get("latencySeconds")),
                latency(after.get("latencySeconds")),
                "failed" if item.get("failed") else item.get("changed"),
            ]
        )
    lines = printers.table(headers, rows)
    for number, item in enumerate(items, 1):
        if item.get("failed"):
            lines += ["", f"#{number} failed: {item['to'].get('error')}"]
        elif item.get("changed") and item.get("diff"):
            lines += ["", f"#{number} {item['request']['method']} {item['request']['path']}:"]
            lines += ["  " + line for line in str(item["diff"]).splitlines()]
    before, after = summary.get("from") or {}, summary.get("to") or {}
    lines += [
        "",
        f"{summary.get('requests', len(items))} requests: {summary.get('changed', 0)} changed, "
        f"{summary.get('failed', 0)} failed, {summary.get('unchanged', 0)} unchanged",
        f"latency p50 {latency(before.get('p50')) or '-'} → {latency(after.get('p50')) or '-'}, "
        f"p95 {latency(before.get('p95')) or '-'} → {latency(after.get('p95')) or '-'}",
    ]
    return lines
