"""`shipyard get`: list environments, agents, previews, revisions and rollouts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from controller.cli import (
    age,
    client,
    common,
    durations,
    labels,
    objects,
    output_format,
    printers,
)
from controller.errors import ShipyardError
from preview import naming

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Item:
    """One row of `get`: its object for json/yaml, its name, labels and table cells."""

    key: tuple[object, ...]
    kind: str
    name: str
    obj: dict[str, Any]
    labels: Mapping[str, str]
    cells: Callable[[float], list[object]]  # given now: the default columns
    wide: Callable[[float], list[object]]  # given now: the columns -o wide adds


@dataclass(frozen=True)
class Query:
    name: str | None
    environment: str | None  # None: every environment
    selector: str | None
    warned: set[str] = field(default_factory=set)  # warnings printed once, even in a watch

    def warn(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            click.echo(f"Warning: {message}", err=True)


@dataclass(frozen=True)
class Kind:
    plural: str
    aliases: tuple[str, ...]
    headers: tuple[str, ...]
    wide_headers: tuple[str, ...]
    fetch: Callable[[client.Client, Query], list[Item]]
    namespaced: bool = True
    single_when_named: bool = True  # NAME names one object (in one environment)


# Environments and previews ---------------------------------------------------------------


def _environment_item(env: dict[str, Any]) -> Item:
    agents = env.get("agents") or []
    ready = sum(1 for agent in agents if agent.get("ready"))
    condition: dict[str, Any] = next(
        (c for c in env.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    serving = [agent["since"] for agent in agents if agent.get("since")]
    times = serving or [c.get("lastTransitionTime") for c in env.get("conditions") or []]
    oldest = min((t for t in map(age.to_epoch, times) if t is not None), default=None)
    return Item(
        key=("environment", env["name"]),
        kind="environment",
        name=env["name"],
        obj=objects.environment(env, oldest),
        labels={},
        cells=lambda now: [
            env["name"],
            env.get("branch"),
            condition.get("status", "Unknown"),
            f"{ready}/{len(agents)}",
            age.since(oldest, now),
        ],
        wide=lambda now: [common.short(env.get("commit")), condition.get("message")],
    )


def _fetch_environments(api: client.Client, query: Query) -> list[Item]:
    listed = api.environment_list()
    source_warning(listed.get("source"), query.warn)
    if query.name is not None:
        return [_environment_item(api.environment(query.name))]
    return [_environment_item(env) for env in listed["items"]]


def source_warning(source: object, warn: Callable[[str], None]) -> None:
    """The controller's last fetch failed: what it shows may be stale, or nothing at all."""
    if not isinstance(source, dict) or not source.get("error"):
        return
    last = source.get("lastFetch")
    since = (
        f"shows what it fetched {age.since(last)} ago"
        if last
        else "has never fetched it, so it knows no environments yet"
    )
    warn(f"{source['error']}; the controller {since}")


def _fetch_previews(api: client.Client, query: Query) -> list[Item]:
    if query.name == naming.PRODUCTION:
        raise ShipyardError(f'environment "{query.name}" is not a preview')
    return [item for item in _fetch_environments(api, query) if item.name != naming.PRODUCTION]


# Agents ----------------------------------------------------------------------------------


def _agent_item(agent: dict[str, Any]) -> Item:
    return Item(
        key=("agent", agent["environment"], agent["name"]),
        kind="agent",
        name=agent["name"],
        obj=objects.agent(agent),
        labels=agent.get("labels") or {},
        cells=lambda now: [
            agent["name"],
            agent["environment"],
            agent.get("version"),
            bool(agent.get("ready")),
            agent.get("url"),
            age.since(agent.get("since"), now),
        ],
        wide=lambda now: [
            agent.get("restarts"),
            common.short(agent.get("commit")),
            agent.get("state"),
            agent.get("desiredVersion"),
            canary_cell(agent.get("canary")),
        ],
    )


def canary_cell(canary: dict[str, Any] | None) -> str:
    """A running canary as `VERSION WEIGHT% STEP/STEPS`, else `<none>`."""
    if not canary or canary.get("phase") not in ("Progressing", "Paused"):
        return "<none>"
    return (
        f"{canary.get('canary')} {canary.get('weight')}% {canary.get('step')}/{canary.get('steps')}"
    )


def _agents(api: client.Client, query: Query) -> list[dict[str, Any]]:
    found = [
        agent
        for agent in api.agents(query.environment)
        if query.name is None or agent["name"] == query.name
    ]
    if query.name is not None and not found:
        if query.environment is not None:
            api.describe(query.environment, query.name)  # 404 with the API's own words
        raise ShipyardError(f'agent "{query.name}" not found in any environment')
    return found


def _fetch_agents(api: client.Client, query: Query) -> list[Item]:
    return [_agent_item(agent) for agent in _agents(api, query)]


# Revisions and rollouts ------------------------------------------------------------------


def _revision_item(revision: dict[str, Any], labels_of: Mapping[str, str]) -> Item:
    name = f"{revision['agent']}-{revision['number']}"
    return Item(
        key=("revision", revision["environment"], revision["agent"], revision["number"]),
        kind="revision",
        name=name,
        obj=objects.revision(revision, labels_of),
        labels=labels_of,
        cells=lambda now: [
            revision["agent"],
            revision["environment"],
            revision["number"],
            revision.get("version"),
            common.short(revision.get("commit")),
            age.since(revision.get("created_at"), now),
        ],
        wide=lambda now: [
            revision.get("branch"),
            revision.get("author"),
            common.first_line(revision.get("message")),
        ],
    )


def _fetch_revisions(api: client.Client, query: Query) -> list[Item]:
    items = []
    for agent in _agents(api, query):
        for revision in api.revisions(agent["name"], agent["environment"]):
            items.append(_revision_item(revision, agent.get("labels") or {}))
    return items


def _rollout_item(rollout: dict[str, Any], labels_of: Mapping[str, str]) -> Item:
    def duration(now: float) -> str:
        started = rollout.get("started_at")
        if not started:
            return age.UNKNOWN
        return age.human_duration((rollout.get("finished_at") or now) - started)

    return Item(
        key=("rollout", rollout["id"]),
        kind="rollout",
        name=str(rollout["id"]),
        obj=objects.rollout(rollout, labels_of),
        labels=labels_of,
        cells=lambda now: [
            rollout["agent"],
            rollout["environment"],
            rollout.get("from_version"),
            rollout.get("to_version"),
            rollout.get("result"),
            age.since(rollout.get("started_at"), now),
        ],
        wide=lambda now: [
            rollout["id"],
            common.short(rollout.get("commit")),
            rollout.get("author"),
            duration(now),
            rollout.get("reason"),
        ],
    )


def _fetch_rollouts(api: client.Client, query: Query) -> list[Item]:
    known = {
        (agent["environment"], agent["name"]): agent.get("labels") or {}
        for agent in api.agents(query.environment)
    }
    return [
        _rollout_item(rollout, known.get((rollout["environment"], rollout["agent"]), {}))
        for rollout in api.rollouts(query.name, query.environment)
    ]


KINDS = (
    Kind(
        "environments",
        ("environment", "env", "envs"),
        ("NAME", "BRANCH", "READY", "AGENTS", "AGE"),
        ("COMMIT", "MESSAGE"),
        _fetch_environments,
        namespaced=False,
    ),
    Kind(
        "previews",
        ("preview", "pv"),
        ("NAME", "BRANCH", "READY", "AGENTS", "AGE"),
        ("COMMIT", "MESSAGE"),
        _fetch_previews,
        namespaced=False,
    ),
    Kind(
        "agents",
        ("agent", "ag"),
        ("NAME", "ENVIRONMENT", "VERSION", "READY", "URL", "AGE"),
        ("RESTARTS", "COMMIT", "STATE", "DESIRED", "CANARY"),
        _fetch_agents,
    ),
    Kind(
        "revisions",
        ("revision", "rev", "revs"),
        ("NAME", "ENVIRONMENT", "REVISION", "VERSION", "COMMIT", "AGE"),
        ("BRANCH", "AUTHOR", "MESSAGE"),
        _fetch_revisions,
        single_when_named=False,  # NAME is the agent: its revisions are a list
    ),
    Kind(
        "rollouts",
        ("rollout", "ro"),
        ("NAME", "ENVIRONMENT", "FROM", "TO", "RESULT", "AGE"),
        ("ID", "COMMIT", "AUTHOR", "DURATION", "REASON"),
        _fetch_rollouts,
        single_when_named=False,
    ),
)


def _kind(word: str) -> Kind:
    for kind in KINDS:
        if word.lower() in (kind.plural, *kind.aliases):
            return kind
    names = ", ".join(kind.plural for kind in KINDS)
    raise ShipyardError(f'the server doesn\'t have a resource type "{word}" (known: {names})')


@click.command(name="get")
@click.argument("resource", metavar="RESOURCE")
@click.argument("name", required=False)
@common.environment_option
@click.option("-A", "--all-environments", is_flag=True, help="List across every environment.")
@click.option(
    "-o",
    "--output",
    metavar="FORMAT",
    callback=output_format.option_callback,
    help="Output format: wide (more columns), json, yaml, name (kind/name), "
    "jsonpath=TEMPLATE (kubectl's JSONPath, e.g. '{.items[*].metadata.name}') or "
    "custom-columns=HEADER:PATH,… (e.g. NAME:.metadata.name,VERSION:.status.version).",
)
@click.option(
    "-l",
    "--selector",
    metavar="SELECTOR",
    help="Label selector on the agents' labels: key=value, key!=value, key, !key, "
    "'key in (a,b)', 'key notin (a,b)'; comma-separated requirements must all hold.",
)
@click.option(
    "-w", "--watch", is_flag=True, help="After listing, poll every second and print changes."
)
@click.option(
    "--watch-timeout",
    callback=durations.option_callback,
    metavar="DURATION",
    help="Stop watching after this long (30s, 5m). Default: until interrupted.",
)
@click.option("--no-headers", is_flag=True, help="Print tables without the header row.")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column (key=value,…).")
@client.connection_options
def get(
    resource: str,
    name: str | None,
    *,
    environment: str,
    all_environments: bool,
    output: output_format.Output | None,
    selector: str | None,
    watch: bool,
    watch_timeout: float | None,
    no_headers: bool,
    show_labels: bool,
    server: str | None,
    token: str | None,
) -> None:
    """List environments, agents, previews, revisions or rollouts.

    RESOURCE is one of environments (env), agents (ag), previews (pv), revisions (rev)
    or rollouts (ro); singular forms work too. NAME narrows to one environment or agent.
    Agents, revisions and rollouts are listed for one environment (-e or -n, default
    production) or all of them (-A). -o json|yaml prints kubectl's object shape
    (apiVersion, kind, metadata, spec, status; lists as a v1 List). Nothing found
    prints "No resources found" on stderr and exits 0.

    \b
    Examples:
      shipyard get environments
      shipyard get agents -A -o wide
      shipyard get agents -e preview-feature-x -l 'team=support,tier!=backoffice'
      shipyard get agent support-bot -o yaml
      shipyard get agents -n preview-feature-x --show-labels
      shipyard get agents -A -o jsonpath='{.items[*].metadata.name}'
      shipyard get agents -o custom-columns=NAME:.metadata.name,VERSION:.status.version
      shipyard get revisions support-bot
      shipyard get rollouts -A -w --watch-timeout 5m
      kubectl shipyard get agents --no-headers -o name
    """
    kind = _kind(resource)
    if name is not None and selector:
        raise ShipyardError("name cannot be provided when a selector is specified")
    match = labels.parse(selector or "")
    scope = None if all_environments or not kind.namespaced else environment
    query = Query(name, scope, selector)
    with client.Client(server, token) as api:

        def fetch() -> list[Item]:
            found = [item for item in kind.fetch(api, query) if match(item.labels)]
            return sorted(found, key=lambda item: item.key[1:])

        items = fetch()
        layout = Layout(kind, output or output_format.Output(""), show_labels)
        table = layout.table(no_headers)
        if not items:
            where = f" in {scope} environment." if scope is not None else ""
            click.echo(f"No resources found{where}", err=True)
        elif layout.output.structured and not watch:
            single = (
                name is not None
                and kind.single_when_named
                and (scope is not None or not kind.namespaced)
            )
            value = items[0].obj if single else printers.as_list([item.obj for item in items])
            click.echo(layout.output.render(value), nl=False)
        else:
            _print(items, layout, table, time.time(), first=True)
        if watch:
            _watch(fetch, items, layout, table, watch_timeout)


@dataclass(frozen=True)
class Layout:
    """What one `get` prints for each item: its columns, or its object in a format."""

    kind: Kind
    output: output_format.Output
    show_labels: bool

    def table(self, no_headers: bool) -> printers.Table:
        if self.output.kind == "custom-columns":
            headers = [header for header, _ in self.output.columns]
            return printers.Table(headers, no_headers, keep_case=True)
        headers = list(self.kind.headers)
        if self.output.kind == "wide":
            headers += self.kind.wide_headers
        if self.show_labels:
            headers.append("LABELS")
        return printers.Table(headers, no_headers)

    def row(self, item: Item, now: float) -> list[object]:
        if self.output.kind == "custom-columns":
            return self.output.cells(item.obj)
        row = item.cells(now)
        if self.output.kind == "wide":
            row += item.wide(now)
        if self.show_labels:
            row.append(",".join(f"{key}={value}" for key, value in sorted(item.labels.items())))
        return row


def _print(
    items: Sequence[Item], layout: Layout, table: printers.Table, now: float, first: bool
) -> None:
    if layout.output.kind == "name":
        printers.echo_lines([f"{item.kind}/{item.name}" for item in items])
    elif layout.output.structured:
        for item in items:
            if layout.output.kind == "yaml":
                click.echo("---")
            click.echo(layout.output.render(item.obj), nl=False)
    else:
        rows = [layout.row(item, now) for item in items]
        printers.echo_lines(table.render(rows) if first else table.more(rows))


def _watch(
    fetch: Callable[[], list[Item]],
    items: list[Item],
    layout: Layout,
    table: printers.Table,
    timeout: float | None,
) -> None:
    """Print every object that changed since it was last printed, once a second."""
    seen = {item.key: _signature(item) for item in items}
    first = not items
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        pause = POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - time.monotonic())
        time.sleep(max(pause, 0.0))
        changed = []
        for item in fetch():
            signature = _signature(item)
            if seen.get(item.key) != signature:
                seen[item.key] = signature
                changed.append(item)
        if changed:
            _print(changed, layout, table, time.time(), first=first)
            first = False


def _signature(item: Item) -> str:
    # The object as the API sent it: AGE moving on by itself is not a change.
    return json.dumps(item.obj, sort_keys=True, default=str)
