"""The dashboard's pages as HTML, each from plain data the router gathered.

Pure functions (data in, markup out) so a page is as cheap as the data behind it: the
overview reads the controller's in-memory status once, whatever the number of agents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.api.ui import charts, version_diff
from controller.api.ui.markup import age, attr, path_part, short, text, timestamp
from controller.api.ui.rates import Traffic
from controller.store.records import Event, Pin, Revision, Rollout

ACTIONS = {
    "undo": "Roll back to the previous version and pin it there",
    "pause": "Hold this agent at the version it serves, through new commits",
    "resume": "Lift the pin; the branch's version comes back on the next sync",
    "promote": "Move the canary past its current pause or analysis step",
    "promote-full": "Skip the canary's remaining steps: all traffic to the new version now",
    "abort": "Stop the canary: all traffic back to the stable version",
}
LABELS = {
    "undo": "Undo",
    "pause": "Pause",
    "resume": "Resume",
    "promote": "Promote",
    "promote-full": "Promote fully",
    "abort": "Abort",
}
CANARY_ACTIONS = ("promote", "promote-full", "abort")
AGENT_EVENTS_SHOWN = 20
WITH_REASON = ("undo", "pause")  # the steering calls that record a reason


def agent_href(environment: str, agent: str) -> str:
    return f"/ui/environments/{path_part(environment)}/agents/{path_part(agent)}"


Canaries = dict[tuple[str, str], dict[str, Any]]  # (environment, agent) → running progress


def overview(
    environments: Sequence[dict[str, Any]],
    pulls: dict[str, list[int]],
    canaries: Canaries | None = None,
) -> str:
    if not environments:
        return "<h1>Overview</h1><p>No environments yet: the first sync has not finished.</p>"
    sections = "".join(
        _environment(env, pulls.get(env["branch"], []), canaries or {}) for env in environments
    )
    return f"<h1>Overview</h1>{sections}"


def _environment(env: dict[str, Any], pulls: list[int], canaries: Canaries) -> str:
    name = env["name"]
    ready = next((c for c in env["conditions"] if c["type"] == "Ready"), None)
    stalled = next(
        (c for c in env["conditions"] if c["type"] == "Stalled" and c["status"] == "True"), None
    )
    badge = _state_badge(
        "Stalled" if stalled else ("Ready" if ready and ready["status"] == "True" else "NotReady")
    )
    pull_text = ", ".join(f"#{number}" for number in pulls)
    pull = f" · pull request {text(pull_text)}" if pulls else ""
    heading_id = f"env-{attr(name)}"
    running = {
        a["name"]: canaries[(name, a["name"])]
        for a in env["agents"]
        if (name, a["name"]) in canaries
    }
    rows = "".join(_agent_row(name, agent, running, bool(running)) for agent in env["agents"])
    canary_header = "<th scope=col>Canary</th>" if running else ""
    table = (
        f'<div class="scroll"><table aria-labelledby="{heading_id}">'
        "<thead><tr><th scope=col>Agent</th><th scope=col>Version</th><th scope=col>State</th>"
        f"{canary_header}"
        "<th scope=col>Ready</th><th scope=col>Age</th><th scope=col>URL</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
        if env["agents"]
        else "<p>No agents.</p>"
    )
    return (
        f'<section class="environment" aria-labelledby="{heading_id}">'
        f'<h2 id="{heading_id}">{text(name)} {badge}</h2>'
        f'<p class="meta">branch <code>{text(env["branch"])}</code> · commit '
        f"<code>{short(env['commit'])}</code>{pull}</p>"
        f"{_problems(env, stalled)}{table}</section>"
    )


def _problems(env: dict[str, Any], stalled: dict[str, Any] | None) -> str:
    problems = env.get("problems") or []
    if stalled is None and not problems:
        return ""
    items = "".join(
        f"<li><code>{text(_where(problem))}</code> {text(problem.get('message'))}</li>"
        for problem in problems
    )
    summary = text(stalled["message"]) if stalled else ""
    return (
        f'<div class="problems" role="alert"><p><strong>Stalled:</strong> {summary}</p>'
        f"<ul>{items}</ul></div>"
    )


def _where(problem: dict[str, Any]) -> str:
    where = str(problem.get("file") or "?")
    if problem.get("line"):
        where += f":{problem['line']}"
    if problem.get("field"):
        where += f" ({problem['field']})"
    return where


def _agent_row(
    environment: str, agent: dict[str, Any], canaries: dict[str, dict[str, Any]], column: bool
) -> str:
    version = text(agent["version"] or "—")
    if agent["desiredVersion"] and agent["desiredVersion"] != agent["version"]:
        version += f' <span class="muted">→ {text(agent["desiredVersion"])}</span>'
    if agent["pinnedVersion"]:
        version += ' <span class="tag">pinned</span>'
    link = _link(agent["url"])
    return (
        f'<tr><th scope=row><a href="{agent_href(environment, agent["name"])}">'
        f"{text(agent['name'])}</a></th><td><code>{version}</code></td>"
        f"<td>{_state_badge(agent['state'])}</td>"
        f"{_canary_cell(canaries.get(agent['name'])) if column else ''}"
        f"<td>{'yes' if agent['ready'] else 'no'}</td>"
        f"<td>{age(agent['since'])}</td><td>{link}</td></tr>"
    )


def _canary_cell(progress: dict[str, Any] | None) -> str:
    if progress is None:
        return "<td>—</td>"
    return (
        f"<td><strong>{int(progress['weight'])}%</strong> to "
        f"<code>{text(progress['canary'])}</code>"
        f" <span class=muted>step {progress['step']}/{progress['steps']}, "
        f"{text(progress['phase'])}</span></td>"
    )


def _link(url: str | None) -> str:
    return f'<a href="{attr(url)}">{text(url)}</a>' if url else "—"


def _state_badge(state: str) -> str:
    kind = {
        "Healthy": "good",
        "Ready": "good",
        "Progressing": "busy",
        "Pinned": "busy",
        "Paused": "busy",
        "Promoted": "good",
    }.get(state, "bad")
    return _badge(state, kind)


def _badge(label: str, kind: str) -> str:
    return f'<span class="badge {kind}">{text(label)}</span>'


@dataclass(frozen=True)
class AgentView:
    environment: str
    status: dict[str, Any]
    rollouts: Sequence[Rollout]
    revisions: Sequence[Revision]
    pin: Pin | None
    events: Sequence[Event]
    requests: Sequence[dict[str, Any]] | None  # None: this controller traces no requests
    logs: Sequence[tuple[float | None, str, str]]
    logs_note: str
    previous: bool
    comparison: version_diff.Comparison | None = None
    traffic: Traffic | None = None
    canary: dict[str, Any] | None = None  # the canary's progress, running or last ended
    canary_running: bool = False
    follow: bool = False  # append the running instance's new lines as they come (logs -f)


def agent(view: AgentView, *, may_write: bool) -> str:
    status = view.status
    name = status["name"]
    href = agent_href(view.environment, name)
    url = status["url"]
    summary = (
        "<dl class=summary>"
        f"<dt>Environment</dt><dd>{text(view.environment)}</dd>"
        f"<dt>Version</dt><dd><code>{text(status['version'] or '—')}</code></dd>"
        f"<dt>Wanted</dt><dd><code>{text(status['desiredVersion'] or '—')}</code></dd>"
        f"<dt>State</dt><dd>{_state_badge(status['state'])} {text(status['message'])}</dd>"
        f"<dt>Ready</dt><dd>{'yes' if status['ready'] else 'no'}</dd>"
        f"<dt>Age</dt><dd>{age(status['since'])}</dd>"
        f"<dt>URL</dt><dd>{_link(url)}</dd>"
        "</dl>"
    )
    return (
        f"<h1>{text(name)} <span class=muted>in {text(view.environment)}</span></h1>"
        f"{summary}{_pin(view.pin)}{_canary(view.canary, view.canary_running)}"
        f"{_actions(href, view.pin, view.canary_running, may_write)}"
        f"{_timeline(view.rollouts, view.revisions)}"
        f"{_comparison(href, view)}"
        f"{charts.section(view.traffic) if view.traffic is not None else ''}"
        f"{_requests(view.requests)}"
        f"{_logs(href, view)}<h2>Events</h2>"
        f"{events_table(view.events[-AGENT_EVENTS_SHOWN:], with_names=False)}"
    )


def _pin(pin: Pin | None) -> str:
    if pin is None:
        return "<h2>Pin</h2><p>Not pinned: the branch decides the version.</p>"
    why = f": {text(pin.reason)}" if pin.reason else ""
    return (
        f"<h2>Pin</h2><p><span class=tag>{text(pin.kind)}</span> held at "
        f"<code>{text(pin.version)}</code> by {text(pin.actor)} {timestamp(pin.created_at)}"
        f"{why}</p>"
    )


def _canary(progress: dict[str, Any] | None, running: bool) -> str:
    if progress is None:
        return ""
    verdicts = progress.get("verdicts") or []
    last = verdicts[-1] if verdicts else None
    verdict = (
        f"<dt>Last analysis</dt><dd>{text(last.get('result', ''))} "
        f"<span class=muted>{text(last.get('message', ''))}</span></dd>"
        if isinstance(last, dict)
        else ""
    )
    heading = "Canary" if running else "Last canary"
    return (
        f'<h2 id="canary">{heading}</h2><dl class=summary>'
        f"<dt>Stable</dt><dd><code>{text(progress['stable'])}</code></dd>"
        f"<dt>Canary</dt><dd><code>{text(progress['canary'])}</code></dd>"
        f"<dt>Weight</dt><dd><strong>{int(progress['weight'])}%</strong> of requests</dd>"
        f"<dt>Step</dt><dd>{progress['step']} of {progress['steps']}</dd>"
        f"<dt>Phase</dt><dd>{_state_badge(str(progress['phase']))} "
        f"{text(progress['message'])}</dd>{verdict}</dl>"
    )


def _actions(href: str, pin: Pin | None, canary_running: bool, may_write: bool) -> str:
    if not may_write:
        return "<p class=muted>Sign in with a write token to act on this agent.</p>"
    wanted = ["undo", "resume" if pin is not None else "pause"]
    if canary_running:
        wanted = [*CANARY_ACTIONS, *wanted]
    links = "".join(
        f'<li><a class="button" href="{href}/confirm/{action}">{LABELS[action]}…</a></li>'
        for action in wanted
    )
    return f'<nav aria-label="Actions"><ul class="actions">{links}</ul></nav>'


def _timeline(rollouts: Sequence[Rollout], revisions: Sequence[Revision]) -> str:
    if not rollouts:
        return "<h2>Rollouts</h2><p>No rollouts yet.</p>"
    messages = {(r.version, r.commit): r.message for r in revisions}
    items = "".join(
        f'<li class="rollout {text(str(r.result).lower())}">'
        f"{timestamp(r.started_at)} <strong>{text(r.author)}</strong> "
        f"<code>{short(r.commit)}</code> {text(messages.get((r.to_version, r.commit), '').strip())}"
        f"<br><code>{text(r.from_version or '∅')}</code> → <code>{text(r.to_version)}</code> "
        f"{_state_badge(str(r.result))} <span class=muted>{text(r.reason)}</span></li>"
        for r in reversed(rollouts)
    )
    return f'<h2>Rollouts</h2><ol class="timeline" reversed>{items}</ol>'


def _comparison(href: str, view: AgentView) -> str:
    if view.comparison is None:
        return ""
    return version_diff.section(href, view.revisions, view.comparison)


def _requests(requests: Sequence[dict[str, Any]] | None) -> str:
    if requests is None:
        return ""
    if not requests:
        return "<h2>Recent requests</h2><p>None traced yet.</p>"
    rows = "".join(
        f"<tr><td>{timestamp(r['time'])}</td><td><code>{text(r['version'])}</code></td>"
        f"<td>{text(r['method'])} {text(r['path'])}</td><td>{text(r['status'])}</td>"
        f"<td>{r['latencySeconds'] * 1000:.1f} ms</td>"
        f"<td><code>{text(r['traceId'])}</code></td></tr>"
        for r in reversed(requests)
    )
    return (
        '<h2 id="requests">Recent requests</h2>'
        '<div class="scroll"><table aria-labelledby="requests">'
        "<thead><tr><th scope=col>Time</th><th scope=col>Version</th><th scope=col>Request</th>"
        "<th scope=col>Status</th><th scope=col>Latency</th><th scope=col>Trace id</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></div>"
    )


def _logs(href: str, view: AgentView) -> str:
    choices = {
        "current instance": (f"{href}#logs", not view.previous and not view.follow),
        "follow (-f)": (f"{href}?follow=1#logs", view.follow and not view.previous),
        "previous instance (--previous)": (f"{href}?previous=1#logs", view.previous),
    }
    links = " · ".join(
        f'<a href="{url}" aria-current="page">{name}</a>'
        if chosen
        else f'<a href="{url}">{name}</a>'
        for name, (url, chosen) in choices.items()
    )
    lines = "".join(f"{text(stream)} {text(line)}\n" for _, stream, line in view.logs)
    note = f"<p class=muted>{text(view.logs_note)}</p>" if view.logs_note else ""
    following = view.follow and not view.previous
    if following:
        since = next((moment for moment, _, _ in reversed(view.logs) if moment is not None), None)
        query = f"?since={since!r}" if since is not None else ""
        shown = (
            f'<pre id="log-lines" data-keep data-follow="{href}/logs/stream{query}" tabindex=0 '
            f'aria-label="Log output, following" aria-live="off">{lines}</pre>'
            "<p class=muted>New lines appear as the agent writes them (needs JavaScript; "
            "without it, reload).</p>"
        )
    else:
        shown = f'<pre tabindex=0 aria-label="Log output">{lines}</pre>' if view.logs else ""
    which = (
        "previous instance" if view.previous else "following" if following else "current instance"
    )
    return (
        f'<h2 id="logs">Logs <span class=muted>({which})</span></h2>'
        f'<p class="log-choice">Show: {links}</p>{note}{shown}'
    )


def events_table(events: Iterable[Event], *, with_names: bool = True) -> str:
    rows = "".join(
        f"<tr><td>{timestamp(e.time)}</td>"
        f"<td>{_badge(e.type, 'good' if e.type == 'Normal' else 'bad')}</td>"
        + (f"<td>{text(e.environment)}</td><td>{text(e.agent or '—')}</td>" if with_names else "")
        + f"<td>{text(e.reason)}</td><td>{text(e.message)}</td></tr>"
        for e in reversed(list(events))
    )
    if not rows:
        return "<p>No events.</p>"
    names = "<th scope=col>Environment</th><th scope=col>Agent</th>" if with_names else ""
    return (
        '<div class="scroll"><table><thead><tr><th scope=col>Time</th><th scope=col>Type</th>'
        f"{names}<th scope=col>Reason</th><th scope=col>Message</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def events(
    shown: Sequence[Event],
    environments: Sequence[str],
    agents: Sequence[str],
    environment: str | None,
    agent: str | None,
) -> str:
    def options(names: Sequence[str], chosen: str | None) -> str:
        return '<option value="">all</option>' + "".join(
            f"<option{' selected' if name == chosen else ''}>{text(name)}</option>"
            for name in names
        )

    return (
        "<h1>Events</h1>"
        '<form method="get" action="/ui/events" class="filters">'
        '<label>Environment <select name="environment">'
        f"{options(environments, environment)}</select></label>"
        f'<label>Agent <select name="agent">{options(agents, agent)}</select></label>'
        '<button type="submit">Filter</button></form>'
        f"{events_table(shown)}"
    )


def confirm(environment: str, agent_name: str, action: str, csrf: str) -> str:
    href = agent_href(environment, agent_name)
    reason = (
        '<label>Reason (optional) <input name="reason" maxlength="1000"></label>'
        if action in WITH_REASON
        else ""
    )
    return (
        f"<h1>{text(LABELS[action])} {text(agent_name)} in {text(environment)}?</h1>"
        f"<p>{text(ACTIONS[action])}.</p>"
        f'<form method="post" action="{href}/{action}">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">{reason}'
        f'<p><button type="submit" autofocus>{text(LABELS[action])}</button> '
        f'<a href="{href}">Cancel</a></p></form>'
    )


def login(csrf: str, error: str = "") -> str:
    shown = f'<p class="problems" role="alert">{text(error)}</p>' if error else ""
    return (
        "<h1>Sign in</h1>"
        "<p>Paste an API token: a read token to look, a write token to act.</p>"
        f"{shown}"
        '<form method="post" action="/ui/login">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">'
        '<label for="token">Token</label> '
        '<input id="token" name="token" type="password" autocomplete="current-password"'
        " required autofocus> "
        '<button type="submit">Sign in</button></form>'
    )


def problem(title: str, detail: str) -> str:
    return (
        f'<h1>{text(title)}</h1><p role=alert>{text(detail)}</p><p><a href="/ui/">Overview</a></p>'
    )
