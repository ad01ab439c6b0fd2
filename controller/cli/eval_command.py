"""`shipyard eval`: how an agent's golden cases went on the version an environment runs."""

from __future__ import annotations

import click

from controller.cli import client, common, printers


@click.command(name="eval")
@click.argument("agent")
@common.environment_option
@client.connection_options
def eval_results(agent: str, environment: str, *, server: str | None, token: str | None) -> None:
    """Print the eval results of AGENT's version in the environment.

    One row per case with its result, latency and the reason of a failure. Exit status:
    0 when every case passes, 1 when any fails or none were run yet, 2 for usage errors.

    \b
    Examples:
      shipyard eval support-bot -e preview-feature-x
      shipyard eval support-bot -e production
    """
    with client.Client(server, token) as api:
        found = api.evals(environment, agent)
    cases = found.get("cases") or []
    if not cases:
        click.echo(f"no eval results for {agent} in {environment} yet", err=True)
        raise SystemExit(1)
    click.echo(f"{agent} {found.get('version')} in {environment}")
    rows = [
        [
            f"{case['suite']}/{case['case']}",
            "pass" if case["passed"] else "FAIL",
            f"{case['latencyMs']:.0f}ms",
            case.get("reason") or "",
        ]
        for case in cases
    ]
    printers.echo_lines(printers.table(["CASE", "RESULT", "LATENCY", "REASON"], rows))
    if not all(case["passed"] for case in cases):
        raise SystemExit(1)
