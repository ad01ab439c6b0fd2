"""`shipyard logs`: an agent's output, from the API's log stream."""

from __future__ import annotations

import time

import click

from controller.cli import client, common, durations


@click.command(name="logs")
@click.argument("agent")
@common.environment_option
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option(
    "-p",
    "--previous",
    is_flag=True,
    help="The output of the last ended instance (a crash, a restart, a failed rollout); "
    "on Kubernetes each pod's container before its last restart.",
)
@click.option(
    "--since",
    callback=durations.option_callback,
    metavar="DURATION",
    help="Only lines newer than this (10s, 5m, 1h).",
)
@click.option("--timestamps", is_flag=True, help="Prefix each line with its RFC 3339 time (UTC).")
@click.option(
    "--tail",
    type=click.IntRange(min=0),
    help="Only the last N lines (per pod on Kubernetes). Default: all.",
)
@click.option(
    "--stream",
    "streams",
    multiple=True,
    type=click.Choice(["stdout", "stderr", "shipyard"]),
    help="Only these streams (repeatable); shipyard is the supervisor's own notes. Default: all.",
)
@client.connection_options
def logs(
    agent: str,
    environment: str,
    *,
    follow: bool,
    previous: bool,
    since: float | None,
    timestamps: bool,
    tail: int | None,
    streams: tuple[str, ...],
    server: str | None,
    token: str | None,
) -> None:
    """Print an agent's output: its process output on the local target, pod logs on Kubernetes.

    On Kubernetes: every pod of the version the environment runs, each line prefixed with
    [pod/NAME/CONTAINER] as `kubectl logs --prefix` does.

    \b
    Examples:
      shipyard logs support-bot -e production
      shipyard logs support-bot -e preview-feature-x -f --since 10m
      shipyard logs triage --timestamps --stream stderr
      shipyard logs support-bot -e production --previous
      shipyard logs support-bot --previous --tail 20
    """
    if previous and follow:
        raise click.UsageError("--previous shows an ended instance: it cannot be followed")
    with client.Client(server, token) as api:
        for entry in api.logs(environment, agent, since, follow, tail=tail, previous=previous):
            if streams and entry.get("stream") not in streams:
                continue
            text = str(entry.get("line", ""))
            if entry.get("source"):
                text = f"[{entry['source']}] {text}"
            if timestamps:
                text = f"{_rfc3339(entry.get('timestamp'))} {text}"
            click.echo(text)


def _rfc3339(timestamp: object) -> str:
    if not isinstance(timestamp, int | float):
        return "-"
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{seconds}.{int((timestamp % 1) * 1_000_000):06d}Z"
