"""`shipyard rollout status|history|undo|pause|resume|promote|abort`, as kubectl's and Argo
Rollouts' `rollout` verbs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
import yaml

from controller.cli import age, client, common, durations, printers
from controller.errors import ShipyardError
from controller.specs import manifest_diff

POLL_SECONDS = 1.0
DEFAULT_TIMEOUT = "5m"

EXIT_HEALTHY = 0
EXIT_ERROR = 1  # ShipyardError, raised and printed by main
EXIT_FAILED = 2
EXIT_TIMED_OUT = 3

FAILED_RESULTS = ("Failed", "RolledBack", "Aborted")


@click.group(name="rollout")
def rollout() -> None:
    """Watch, inspect and steer the rollouts of an agent.

    \b
    Examples:
      shipyard rollout status support-bot -e production
      shipyard rollout history support-bot
      shipyard rollout undo support-bot -e production --reason "answers got rude"
      shipyard rollout resume support-bot -e production
      shipyard rollout promote support-bot -e production
      shipyard rollout abort support-bot -e production
    """


# status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    code: int | None  # None: still rolling out
    message: str


def verdict(
    name: str,
    agent: dict[str, Any],
    rollouts: Sequence[dict[str, Any]],
    environment: dict[str, Any] | None = None,
    pin: dict[str, Any] | None = None,
) -> Verdict:
    """Where the rollout of `agent` stands, from its status and its rollouts (oldest first).

    An environment Stalled on its newest commit (invalid manifests, production's last
    agent about to be removed) has not rolled that commit out, whatever still serves: a
    CI gate waiting on the commit must fail, not pass on the version before it. A pause
    that holds back a newer version is still rolling out (kubectl waits on a paused
    Deployment too); an undo pin is a finished rollout to the pinned version.
    """
    stalled = _stalled(environment)
    if stalled is not None:
        return Verdict(EXIT_FAILED, f'agent "{name}" rollout is blocked: {stalled}')
    latest = rollouts[-1] if rollouts else None
    canary = agent.get("canary")
    if latest is not None and latest.get("result") == "Progressing" and canary_running(canary):
        return Verdict(None, canary_line(name, canary))
    state = agent.get("state")
    desired = agent.get("desiredVersion")
    if latest is not None and latest.get("result") == "Progressing":
        serving = latest.get("from_version")
        keeps = f", {serving} still serving" if serving else ""
        return Verdict(
            None,
            f'Waiting for agent "{name}" rollout to finish: '
            f"{latest.get('to_version')} is starting{keeps}...",
        )
    if state == "Healthy":
        return Verdict(EXIT_HEALTHY, f'agent "{name}" successfully rolled out')
    held_back = desired is not None and desired != agent.get("version")
    if state == "Pinned" and pin and pin.get("kind") == "pause" and held_back:
        return Verdict(
            None,
            f'Waiting for agent "{name}" rollout to finish: paused at {agent.get("version")} '
            f"({pin.get('reason')}); {desired} waits for "
            f'"shipyard rollout resume {name}"...',
        )
    if state == "Pinned":
        return Verdict(
            EXIT_HEALTHY,
            f'agent "{name}" successfully rolled out (pinned to {agent.get("version")})',
        )
    failed = (
        latest is not None
        and latest.get("result") in FAILED_RESULTS
        and latest.get("to_version") == desired
    )
    if state == "Failed" or failed:
        if latest is not None and latest.get("result") in FAILED_RESULTS:
            how = {"RolledBack": "was rolled back", "Aborted": "was aborted"}.get(
                latest["result"], "failed"
            )
            reason = latest.get("reason") or agent.get("message") or "no reason given"
            return Verdict(
                EXIT_FAILED,
                f'agent "{name}" rollout to {latest.get("to_version")} {how}: {reason}',
            )
        return Verdict(EXIT_FAILED, f'agent "{name}" failed: {agent.get("message") or state}')
    if agent.get("version") is None:
        return Verdict(
            None, f'Waiting for agent "{name}" rollout to finish: {desired} is not serving yet...'
        )
    if agent.get("version") == desired:
        # Rolled out, but its process does not serve right now (CrashLoopBackOff, ...).
        why = agent.get("message") or state
        return Verdict(None, f'Waiting for agent "{name}": {desired} is {state}: {why}...')
    return Verdict(
        None,
        f'Waiting for agent "{name}" rollout to finish: {agent.get("version")} serving, '
        f"{desired} wanted...",
    )


def canary_running(canary: dict[str, Any] | None) -> bool:
    return bool(canary) and (canary or {}).get("phase") in ("Progressing", "Paused")


def canary_line(name: str, canary: dict[str, Any] | None) -> str:
    """A running canary: step i/n, weight, and the latest analysis verdict."""
    canary = canary or {}
    line = (
        f'Waiting for agent "{name}" canary {canary.get("canary")}: step '
        f"{canary.get('step')}/{canary.get('steps')}, weight {canary.get('weight')}%, "
        f"{canary.get('phase')}"
    )
    if canary.get("message"):
        line += f" ({canary['message']})"
    verdicts = canary.get("verdicts") or []
    if verdicts:
        last = verdicts[-1]
        line += f"; {last.get('analysis')}: {last.get('result')}, {last.get('message')}"
    return line + "..."


def _stalled(environment: dict[str, Any] | None) -> str | None:
    """Why the environment's newest commit cannot be deployed, if it is Stalled."""
    if not environment:
        return None
    for condition in environment.get("conditions") or []:
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            commit = str(environment.get("commit") or "")[:12] or "its newest commit"
            return (
                f"{environment.get('name', 'the environment')} is Stalled at {commit}: "
                f"{condition.get('message') or condition.get('reason')}"
            )
    return None


@rollout.command(name="status")
@click.argument("agent")
@common.environment_option
@click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT,
    show_default=True,
    callback=durations.option_callback,
    metavar="DURATION",
    help="Give up after this long (exit 3).",
)
@click.option(
    "--watch/--no-watch",
    "-w",
    default=True,
    show_default=True,
    help="Keep watching until the rollout ends; --no-watch reports once.",
)
@client.connection_options
def status(
    agent: str,
    *,
    environment: str,
    timeout: float,
    watch: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Watch an agent's rollout until it is healthy, fails, or time runs out.

    Exit status: 0 healthy (or pinned by an undo or pause), 1 error (unknown agent or
    environment, API unreachable), 2 the latest rollout failed or was rolled back, or
    the environment is Stalled on a newer commit that cannot be deployed, 3 timed out
    (with --no-watch: still rolling out, or paused with a newer version held back).

    \b
    Examples:
      shipyard rollout status support-bot -e production
      shipyard rollout status triage -e preview-feature-x --timeout 2m
      shipyard rollout status triage --no-watch || echo "not done yet"
    """
    deadline = time.monotonic() + timeout
    printed = None
    with client.Client(server, token) as api:
        while True:
            described = api.describe(environment, agent)
            outcome = verdict(
                agent,
                {**described["agent"], "canary": described.get("canary")},
                described.get("rollouts") or [],
                {"name": environment, **(described.get("environmentStatus") or {})},
                described.get("pin"),
            )
            if outcome.code == EXIT_HEALTHY:
                click.echo(outcome.message)
                raise SystemExit(EXIT_HEALTHY)
            if outcome.code is not None:
                click.echo(f"error: {outcome.message}", err=True)
                raise SystemExit(outcome.code)
            if outcome.message != printed:
                click.echo(outcome.message)
                printed = outcome.message
            remaining = deadline - time.monotonic()
            if not watch or remaining <= 0:
                if watch:
                    click.echo("error: timed out waiting for the condition", err=True)
                raise SystemExit(EXIT_TIMED_OUT)
            time.sleep(min(POLL_SECONDS, remaining))


# history -----------------------------------------------------------------------------------


@rollout.command(name="history")
@click.argument("agent")
@common.environment_option
@click.option("--revision", type=click.IntRange(min=1), help="Show this revision in full.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml"]),
    help="Print the revisions as JSON or YAML instead of a table.",
)
@client.connection_options
def history(
    agent: str,
    *,
    environment: str,
    revision: int | None,
    output: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """List an agent's revisions in an environment, or show one with its change.

    The table is REVISION VERSION COMMIT AUTHOR CHANGE AGE, CHANGE being the commit's
    summary line. With --revision N: that revision's manifest as YAML, a unified diff
    against the revision before it, and its rollouts with every canary step they walked
    (and every pause, resume, promote or abort on the way).

    \b
    Examples:
      shipyard rollout history support-bot
      shipyard rollout history support-bot -e preview-feature-x -o yaml
      shipyard rollout history support-bot --revision 3
    """
    with client.Client(server, token) as api:
        revisions = api.revisions(agent, environment)
        described: dict[str, Any] = {}
        if revision is not None:
            described = api.describe(environment, agent)
    if revision is not None:
        lines = _one_revision(
            agent, revisions, revision, described.get("manifest"), described.get("manifestRevision")
        )
        lines.extend(_rollout_lines(revisions, revision, described.get("rollouts")))
        click.echo("\n".join(lines))
        return
    if output is not None:
        click.echo(printers.dumps(printers.as_list(revisions), output), nl=False)
        return
    now = time.time()
    rows = [
        [
            r.get("number"),
            r.get("version"),
            common.short(r.get("commit")),
            r.get("author"),
            common.first_line(r.get("message")),
            age.since(r.get("created_at"), now),
        ]
        for r in revisions
    ]
    click.echo(f"agent/{agent} in {environment}")
    headers = ("REVISION", "VERSION", "COMMIT", "AUTHOR", "CHANGE", "AGE")
    printers.echo_lines(printers.table(headers, rows))


def _manifest(
    revision: dict[str, Any], described: int | None, latest: Any
) -> dict[str, Any] | None:
    """A revision's manifest: served with it, or (for the one serving) by describe."""
    if isinstance(revision.get("manifest"), dict):
        return dict(revision["manifest"])
    if isinstance(revision.get("manifest_json"), str):
        loaded = yaml.safe_load(revision["manifest_json"])  # JSON is YAML
        return loaded if isinstance(loaded, dict) else None
    if described is not None and revision.get("number") == described and isinstance(latest, dict):
        return latest
    return None


def _yaml(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)


def _rollout_lines(revisions: Sequence[dict[str, Any]], number: int, rollouts: Any) -> list[str]:
    """The rollouts of revision `number`, each with the canary steps it walked."""
    chosen = next((r for r in revisions if r.get("number") == number), None)
    if chosen is None or not isinstance(rollouts, list):
        return []
    mine = [
        r
        for r in rollouts
        if isinstance(r, dict)
        and r.get("to_version") == chosen.get("version")
        and r.get("commit") == chosen.get("commit")
    ]
    lines = ["Rollouts:"] if mine else []
    for rollout in mine:
        arrow = manifest_diff.ARROW
        moving = f"{rollout.get('from_version') or '-'} {arrow} {rollout.get('to_version')}"
        reason = f": {rollout.get('reason')}" if rollout.get("reason") else ""
        lines.append(f"  #{rollout.get('id')} {moving} {rollout.get('result')}{reason}")
        for step in rollout.get("steps") or ():
            where = f"step {step.get('step')}/{step.get('steps')}" if step.get("steps") else ""
            lines.append(
                f"    {age.since(step.get('at'))} ago  {where:<10} {step.get('kind'):<8} "
                f"{step.get('what')}"
            )
    return lines


def _one_revision(
    agent: str,
    revisions: Sequence[dict[str, Any]],
    number: int,
    latest: Any,
    latest_number: int | None,
) -> list[str]:
    chosen = next((r for r in revisions if r.get("number") == number), None)
    if chosen is None:
        known = ", ".join(str(r.get("number")) for r in revisions) or "none"
        raise ShipyardError(f"revision {number} of {agent} not found (revisions: {known})")
    before = max(
        (r for r in revisions if int(r.get("number") or 0) < number),
        key=lambda r: int(r.get("number") or 0),
        default=None,
    )
    manifest = _manifest(chosen, latest_number, latest)
    lines = [
        f"agent/{agent} with revision #{number}",
        f"Version:      {chosen.get('version')}",
        f"Commit:       {chosen.get('commit')}",
        f"Branch:       {chosen.get('branch')}",
        f"Author:       {chosen.get('author')}",
        f"Change:       {common.first_line(chosen.get('message'))}",
        f"Age:          {age.since(chosen.get('created_at'))}",
        "Manifest:",
    ]
    if manifest is None:
        lines.append("  <not served by the API for this revision>")
    else:
        lines.extend(f"  {line}" for line in _yaml(manifest).splitlines())
    if before is None:
        lines.append("Change from the revision before: <none: this is the first revision>")
        return lines
    lines.append(f"Change from revision #{before.get('number')}:")
    lines.append(
        f"  version {before.get('version')} {manifest_diff.ARROW} {chosen.get('version')}, "
        f"commit {common.short(before.get('commit'))} {manifest_diff.ARROW} "
        f"{common.short(chosen.get('commit'))}"
    )
    previous = _manifest(before, latest_number, latest)
    if manifest is None or previous is None:
        lines.append("  <manifest diff unavailable: the API does not serve both manifests>")
        return lines
    lines.extend(
        f"  {line}"
        for line in manifest_diff.unified(
            _yaml(previous),
            _yaml(manifest),
            f"revision {before.get('number')}",
            f"revision {number}",
        )
    )
    lines.extend(_prompt_change(before, chosen, previous, manifest))
    return lines


def _prompt_change(
    before: dict[str, Any],
    chosen: dict[str, Any],
    previous: dict[str, Any],
    manifest: dict[str, Any],
) -> list[str]:
    """The unified diff of the prompt files the two revisions deployed, when they differ.

    A prompt file's text is part of the version but not of the manifest, so the manifest
    diff alone would show a prompt edit as nothing but a new version.
    """
    old, new = before.get("prompt"), chosen.get("prompt")
    if not isinstance(old, str) and not isinstance(new, str):
        return []
    if old == new:
        return ["  prompt file unchanged"]
    old_label = f"revision {before.get('number')} {_prompt_file(previous) or 'prompt'}"
    new_label = f"revision {chosen.get('number')} {_prompt_file(manifest) or 'prompt'}"
    diff = manifest_diff.unified(old or "", new or "", old_label, new_label)
    return ["Prompt file change:", *(f"  {line}" for line in diff)]


def _prompt_file(manifest: dict[str, Any]) -> str | None:
    prompt = manifest.get("spec", {}).get("prompt", {})
    file = prompt.get("file") if isinstance(prompt, dict) else None
    return str(file) if file else None


# undo, pause, resume ----------------------------------------------------------------------


@rollout.command(name="undo")
@click.argument("agent")
@common.environment_option
@click.option(
    "--to-revision",
    type=click.IntRange(min=1),
    help="Revision to return to. Default: the one before what is serving.",
)
@click.option("--reason", default="", help="Why; recorded with the pin and in the events.")
@client.connection_options
def undo(
    agent: str,
    *,
    environment: str,
    to_revision: int | None,
    reason: str,
    server: str | None,
    token: str | None,
) -> None:
    """Roll an agent back (default: to the revision before the one serving) and pin it.

    The environment is pinned to that version (recorded with who, $USER, and why):
    syncing does not bring the undone version back while pinned. The pin lifts when a
    new commit changes the agent, or with `shipyard rollout resume`. Waits until the
    old version is healthy again.

    \b
    Examples:
      shipyard rollout undo support-bot -e production --reason "answers got rude"
      shipyard rollout undo support-bot -e production --to-revision 2
    """
    with client.Client(server, token) as api:
        result = api.undo(environment, agent, to_revision, reason)["rollout"]
        number = to_revision
        if number is None:
            matching = [
                r.get("number")
                for r in api.revisions(agent, environment)
                if r.get("version") == result.get("to_version")
                and r.get("commit") == result.get("commit")
            ]
            number = matching[-1] if matching else None
    which = f"revision {number} ({result.get('to_version')})" if number else result["to_version"]
    click.echo(f"agent/{agent} rolled back to {which} in {environment}")
    click.echo(
        f'pinned until a commit changes {agent} or "shipyard rollout resume {agent} '
        f'-e {environment}"'
    )


@rollout.command(name="pause")
@click.argument("agent")
@common.environment_option
@click.option("--reason", default="", help="Why; recorded with the pin and in the events.")
@client.connection_options
def pause(agent: str, environment: str, reason: str, server: str | None, token: str | None) -> None:
    """Hold an agent at the version it serves, through new commits, until resumed.

    While a canary runs, hold the canary at its current step instead: its weight stays,
    its analysis goes on (a failed check still aborts), timed pauses stop counting, until
    `rollout resume` (or `promote`, or `abort`). Pausing an agent that is already paused
    fails (exit 1) and keeps the first reason.

    \b
    Examples:
      shipyard rollout pause support-bot -e production --reason "holiday freeze"
    """
    with client.Client(server, token) as api:
        answer = api.pause(environment, agent, reason)
    progress = answer.get("canary")
    if isinstance(progress, dict):
        click.echo(
            f"agent/{agent} canary {progress.get('canary')} paused at step "
            f"{progress.get('step')}/{progress.get('steps')} (weight {progress.get('weight')}%) "
            f"in {environment}"
        )
        return
    click.echo(f"agent/{agent} paused at {answer['pin'].get('version')} in {environment}")


@rollout.command(name="resume")
@click.argument("agent")
@common.environment_option
@client.connection_options
def resume(agent: str, environment: str, server: str | None, token: str | None) -> None:
    """Lift a pause or an undo pin; the branch's version comes back on the next sync.

    \b
    Examples:
      shipyard rollout resume support-bot -e production
    """
    with client.Client(server, token) as api:
        answer = api.resume(environment, agent)
    if not answer.get("resumed"):
        raise ShipyardError(f'agent "{agent}" is not paused or pinned in {environment}')
    progress = answer.get("canary")
    step = f" (canary at step {progress.get('step')}/{progress.get('steps')})" if progress else ""
    click.echo(f"agent/{agent} resumed in {environment}{step}")


# promote, abort (a running canary) ------------------------------------------------------


@rollout.command(name="promote")
@click.argument("agent")
@common.environment_option
@click.option(
    "--full", is_flag=True, help="Skip the remaining steps: all traffic to the canary now."
)
@client.connection_options
def promote(
    agent: str, environment: str, full: bool, server: str | None, token: str | None
) -> None:
    """Move a running canary past its current pause or analysis step (--full: promote now).

    Fails (exit 1) when no canary runs for the agent.

    \b
    Examples:
      shipyard rollout promote support-bot -e production
      shipyard rollout promote support-bot -e production --full
    """
    with client.Client(server, token) as api:
        api.promote(environment, agent, full=full)
    what = "promotion in full" if full else "promotion past the current step"
    click.echo(f"agent/{agent} {what} requested in {environment}")


@rollout.command(name="abort")
@click.argument("agent")
@common.environment_option
@client.connection_options
def abort(agent: str, environment: str, server: str | None, token: str | None) -> None:
    """Stop a running canary: all traffic back to the stable version, the canary stopped.

    The rollout ends Aborted (`rollout status` exits 2). Fails (exit 1) when no canary runs.

    \b
    Examples:
      shipyard rollout abort support-bot -e production
    """
    with client.Client(server, token) as api:
        api.abort(environment, agent)
    click.echo(f"agent/{agent} abort requested in {environment}")
