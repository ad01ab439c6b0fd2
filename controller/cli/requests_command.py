"""`shipyard requests`: the newest requests the router passed to an agent, with trace ids.

The table a person reads when asking "what did it just answer, and how fast?"; the trace
id finds the same request in Jaeger, Tempo or any OTLP backend when the controller
exports spans (`serve --otlp-endpoint`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from controller.cli import client, common, printers

HEADERS = ("TIME", "METHOD", "PATH", "STATUS", "LATENCY", "TRACE ID")
WIDE = ("VERSION", "BYTES IN", "BYTES OUT")


@click.command(name="requests")
@click.argument("agent")
@common.environment_option
@click.option("--version", "version", help="Only the requests this version answered.")
@click.option(
    "--limit",
    type=click.IntRange(1, 2000),
    default=50,
    show_default=True,
    help="How many of the newest requests.",
)
@click.option(
    "-o", "--output", type=click.Choice(["wide", "json"]), help="More columns, or the API's JSON."
)
@click.option("--no-headers", is_flag=True, help="Leave out the header line.")
@client.connection_options
def requests(
    agent: str,
    environment: str,
    *,
    version: str | None,
    limit: int,
    output: str | None,
    no_headers: bool,
    server: str | None,
    token: str | None,
) -> None:
    """List the newest requests the router passed to an agent, with their trace ids.

    Oldest first: time, method, path (never the query string), status, latency and trace
    id.

    Kept in the controller's memory per version (the newest 200 of each), whether or not
    spans are exported over OTLP; local target only.

    \b
    Examples:
      shipyard requests support-bot -e production
      shipyard requests support-bot -e preview-feature-x --version 3f1c0d9e2b -o wide
      shipyard requests triage -o json
    """
    with client.Client(server, token) as api:
        items = api.requests(environment, agent, version, limit)
    if output == "json":
        click.echo(json.dumps({"items": items}, indent=4))
        return
    if not items:
        click.echo(f"No requests found for {agent} in {environment}.", err=True)
        return
    headers = HEADERS + WIDE if output == "wide" else HEADERS
    rows = [_row(item, wide=output == "wide") for item in items]
    printers.echo_lines(printers.table(headers, rows, no_headers))


def _row(item: dict[str, Any], *, wide: bool) -> list[object]:
    row: list[object] = [
        _time(item.get("time")),
        item.get("method"),
        item.get("path"),
        item.get("status"),
        latency(item.get("latencySeconds")),
        item.get("traceId"),
    ]
    if wide:
        row += [item.get("version"), item.get("requestBytes"), item.get("responseBytes")]
    return row


def latency(seconds: object) -> str | None:
    """Milliseconds below a second (`12ms`, `0.4ms`), seconds above (`1.25s`)."""
    if not isinstance(seconds, int | float):
        return None
    if seconds < 0.001:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"


def _time(timestamp: object) -> str | None:
    if not isinstance(timestamp, int | float):
        return None
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{seconds}.{int((timestamp % 1) * 1000):03d}Z"
