"""The kubectl-style CLI as a user runs it: real executables against a real `shipyard serve`.

One controller serves the whole module (starting one costs seconds): `main` runs alpha
(team=support) and beta (team=billing); branch `feature` changes alpha, adds gamma and
drops beta, so `preview-feature` runs alpha and gamma. Tests run in file order: the
reading tests first, against that state; the steering tests last, each pushing the
commits it needs, so each also passes alone.

Every command runs as the installed executable (and through `kubectl shipyard`); the
variations of flags and formats run in this process through click's runner, which is
the same code and the same HTTP without a second of interpreter start-up each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from controller.cli.main import cli as cli_group
from controller.errors import ShipyardError
from tests.gitrepos import Upstream
from tests.integration.controller_harness import (
    EXAMPLE_AGENT,
    Shipyard,
    free_port,
    manifest,
    preview_of,
    wait_for,
)
from tests.streams import readline_within

BIN = Path(sys.executable).parent
SHIPYARD = BIN / "shipyard"
KUBECTL_SHIPYARD = BIN / "kubectl-shipyard"
READ = "cli-read-token"
WRITE = "cli-write-token"
PREVIEW = preview_of("feature")


def agent_yaml(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    prompt_file: bool = False,
    model: str = "echo",
    extra: str = "",
    **settings: Any,
) -> str:
    """The harness's manifest, with labels, a prompt file, another model or more spec."""
    text = manifest(name, **settings)
    if labels:
        block = "".join(f"    {key}: {value}\n" for key, value in labels.items())
        text = text.replace(f"  name: {name}\n", f"  name: {name}\n  labels:\n{block}", 1)
    if prompt_file:
        text = text.replace(f"    system: You are {name}.\n", f"    file: prompts/{name}.md\n")
    return text.replace("    name: echo\n", f"    name: {model}\n") + extra


SUPPORT = {"team": "support", "tier": "frontline"}
BILLING = {"team": "billing"}


def alpha(memory: str = "256Mi", **settings: Any) -> str:
    resources = f"  resources:\n    limits:\n      memory: {memory}\n"
    return agent_yaml("alpha", labels=SUPPORT, prompt_file=True, extra=resources, **settings)


def commit_on(upstream: Upstream, branch: str, files: dict[str, str | None], message: str) -> str:
    upstream.git("checkout", "--quiet", branch)
    sha = upstream.commit(files, message=message)
    upstream.push(branch)
    return sha


@dataclass
class World:
    shipyard: Shipyard
    upstream: Upstream
    root: Path

    def environ(self, token: str | None = WRITE, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
        env.update(
            SHIPYARD_SERVER=self.shipyard.api(""),
            USER="ann",
            XDG_CONFIG_HOME=str(self.root / "no-config"),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        if token is not None:
            env["SHIPYARD_TOKEN"] = token
        env.update(extra)
        return env


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        root = tmp_path_factory.mktemp("cli")
        upstream = Upstream(root / "upstream")
        upstream.commit(
            {
                "agent/server.py": (EXAMPLE_AGENT / "server.py").read_text(),
                "prompts/alpha.md": "You are alpha.\n",
                "agents/alpha.yaml": alpha(),
                "agents/beta.yaml": agent_yaml("beta", labels=BILLING),
            },
            message="Add agents",
            branch="main",
        )
        upstream.push("main")
        upstream.commit(
            {
                "prompts/alpha.md": "You are alpha.\nBe friendly.\n",
                "agents/alpha.yaml": alpha(
                    "512Mi",
                    model="echo-2",
                    temperature=0.7,
                )
                + "  tools:\n    - name: search\n      url: https://search.example/\n",
                "agents/gamma.yaml": agent_yaml("gamma"),
                "agents/beta.yaml": None,
            },
            message="Friendlier alpha",
            branch="feature",
        )
        upstream.push("feature")
        shipyard = Shipyard(
            upstream.bare,
            root / "state",
            "--read-token", READ, "--write-token", WRITE,
            poll_interval="0.3s",
            token=WRITE,
        )  # fmt: skip
        shipyard.start()
        try:
            yield World(shipyard, upstream, root)
        finally:
            shipyard.close()


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(
    world: World,
    *arguments: str,
    program: Path | str = SHIPYARD,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Ran:
    """The real executable in a subprocess, as a user or a script runs it."""
    result = subprocess.run(
        [str(program), *arguments],
        env=env or world.environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return Ran(result.returncode, result.stdout, result.stderr)


def cli_many(world: World, *commands: Sequence[str]) -> list[Ran]:
    """Independent commands at once: each pays the interpreter's start-up alone."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda command: cli(world, *command), commands))


def quick(world: World, *arguments: str, token: str = WRITE) -> Ran:
    """The same command in this process: the same code and HTTP, without the ~1 s start-up.

    Each command runs as a real executable at least once above; variations of output
    and flags run here so the module stays fast.
    """
    env = {
        "SHIPYARD_SERVER": world.shipyard.api(""),
        "SHIPYARD_TOKEN": token,
        "USER": "ann",
        "XDG_CONFIG_HOME": str(world.root / "no-config"),
    }
    result = CliRunner().invoke(cli_group, list(arguments), env=env)
    stderr = result.stderr
    if isinstance(result.exception, ShipyardError):  # what `main` prints for it
        stderr += f"error: {result.exception}\n"
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, stderr)


def start(world: World, *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SHIPYARD), *arguments],
        env=world.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def columns(line: str) -> list[str]:
    return line.split()


# Reading -----------------------------------------------------------------------------------

COMMANDS = [
    ["get"], ["describe"], ["rollout"], ["rollout", "status"], ["rollout", "history"],
    ["rollout", "undo"], ["rollout", "pause"], ["rollout", "resume"], ["diff"], ["logs"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(world: World, command: list[str]) -> None:
    result = quick(world, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples:" in result.stdout
    assert "Usage: " in result.stdout


def test_get_environments_and_previews(world: World) -> None:
    table = cli(world, "get", "environments")
    lines = table.stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "BRANCH", "READY", "AGENTS", "AGE"]
    rows = {columns(line)[0]: columns(line) for line in lines[1:]}
    assert rows["production"][1:4] == ["main", "True", "2/2"]
    assert rows[PREVIEW][1:4] == ["feature", "True", "2/2"]
    assert re.fullmatch(r"\d+[smhdy]\w*", rows["production"][4])
    previews = quick(world, "get", "previews", "--no-headers")
    assert [columns(line)[:2] for line in previews.stdout.splitlines()] == [[PREVIEW, "feature"]]
    production = json.loads(quick(world, "get", "env", "production", "-o", "json").stdout)
    assert (production["kind"], production["metadata"]["name"]) == ("Environment", "production")
    assert quick(world, "get", "previews", "-o", "name").stdout == f"environment/{PREVIEW}\n"
    wide = quick(world, "get", "environments", "-o", "wide").stdout.splitlines()
    assert columns(wide[0])[-2:] == ["COMMIT", "MESSAGE"]


def test_get_agents_in_every_output_format(world: World) -> None:
    table, as_json, one = cli_many(
        world,
        ["get", "agents"],
        ["get", "agents", "-A", "-o", "json"],
        ["get", "agent", "alpha", "-e", PREVIEW, "-o", "yaml"],
    )
    lines = table.stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "ENVIRONMENT", "VERSION", "READY", "URL", "AGE"]
    assert [columns(line)[:2] for line in lines[1:]] == [
        ["alpha", "production"],
        ["beta", "production"],
    ]
    listed = json.loads(as_json.stdout)
    assert listed["kind"] == "List"
    assert sorted((a["metadata"]["namespace"], a["metadata"]["name"]) for a in listed["items"]) == [
        (PREVIEW, "alpha"), (PREVIEW, "gamma"), ("production", "alpha"), ("production", "beta"),
    ]  # fmt: skip
    single = yaml.safe_load(one.stdout)
    metadata = single["metadata"]
    assert (metadata["name"], metadata["namespace"], metadata["labels"]) == (
        "alpha",
        PREVIEW,
        SUPPORT,
    )
    assert single["status"]["state"] == "Healthy"

    wide = quick(world, "get", "agents", "-A", "-o", "wide").stdout.splitlines()
    assert columns(wide[0])[-4:] == ["COMMIT", "STATE", "DESIRED", "CANARY"]
    assert len(wide) == 5
    assert all(columns(line)[-1] == "<none>" for line in wide[1:])  # no canary runs
    as_yaml = yaml.safe_load(quick(world, "get", "agents", "-o", "yaml").stdout)
    assert [agent["metadata"]["name"] for agent in as_yaml["items"]] == ["alpha", "beta"]
    assert quick(world, "get", "agents", "-o", "name").stdout == "agent/alpha\nagent/beta\n"
    headless = quick(world, "get", "agents", "--no-headers").stdout.splitlines()
    assert [columns(line)[0] for line in headless] == ["alpha", "beta"]


SELECTIONS = [
    ("team=support", ["alpha", "alpha"]),
    ("team!=support", ["beta", "gamma"]),
    ("team", ["alpha", "alpha", "beta"]),
    ("!team", ["gamma"]),
    ("team=support,tier=frontline", ["alpha", "alpha"]),
]


def test_label_selectors(world: World) -> None:
    real = cli(world, "get", "agents", "-A", "-l", "team in (support,billing),tier notin (x)")
    assert [columns(line)[:2] for line in real.stdout.splitlines()[1:]] == [
        ["alpha", PREVIEW],
        ["alpha", "production"],
        ["beta", "production"],
    ]
    for selector, expected in SELECTIONS:
        result = quick(world, "get", "agents", "-A", "-l", selector, "-o", "name")
        assert sorted(result.stdout.split()) == [f"agent/{name}" for name in expected], selector


def test_no_resources_found_goes_to_stderr_and_exits_0(world: World) -> None:
    scoped = cli(world, "get", "agents", "-l", "team=nobody")
    assert (scoped.returncode, scoped.stdout) == (0, "")
    assert scoped.stderr == "No resources found in production environment.\n"
    everywhere = quick(world, "get", "rollouts", "-A", "-l", "team=nobody")
    assert (everywhere.returncode, everywhere.stdout, everywhere.stderr) == (
        0,
        "",
        "No resources found\n",
    )


def test_get_revisions_and_rollouts(world: World) -> None:
    rollouts = cli(world, "get", "rollouts", "alpha")
    lines = rollouts.stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "ENVIRONMENT", "FROM", "TO", "RESULT", "AGE"]
    assert columns(lines[1])[:3] == ["alpha", "production", "<none>"]
    revisions = quick(world, "get", "revisions", "-A", "-o", "wide").stdout.splitlines()
    assert columns(revisions[0]) == [
        "NAME", "ENVIRONMENT", "REVISION", "VERSION", "COMMIT", "AGE", "BRANCH", "AUTHOR",
        "MESSAGE",
    ]  # fmt: skip
    assert any(columns(line)[:3] == ["alpha", PREVIEW, "1"] for line in revisions[1:])
    items = yaml.safe_load(
        quick(world, "get", "rollouts", "alpha", "-e", PREVIEW, "-o", "yaml").stdout
    )
    assert {(r["spec"]["agent"], r["metadata"]["namespace"]) for r in items["items"]} == {
        ("alpha", PREVIEW)
    }
    assert items["items"][0]["status"]["result"] == "Healthy"


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")


def camel_case_keys(value: Any, where: str = "") -> list[str]:
    """Keys that are not camelCase, below `value`; label keys and manifests are the user's."""
    wrong = []
    if isinstance(value, dict):
        for key, child in value.items():
            if not CAMEL_CASE.fullmatch(str(key)):
                wrong.append(f"{where}.{key}")
            if key not in ("labels", "manifest"):
                wrong += camel_case_keys(child, f"{where}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            wrong += camel_case_keys(child, f"{where}[{index}]")
    return wrong


KINDS = {
    "environments": "Environment",
    "agents": "Agent",
    "revisions": "Revision",
    "rollouts": "Rollout",
}


@pytest.mark.parametrize("resource", list(KINDS))
def test_json_is_kubectls_object_shape(world: World, resource: str) -> None:
    """As `kubectl get pods -o json`: a v1 List of objects with apiVersion, kind, metadata."""
    listed = json.loads(quick(world, "get", resource, "-A", "-o", "json").stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert listed["items"]
    for item in listed["items"]:
        assert item["apiVersion"] == "shipyard.dev/v1alpha1"
        assert item["kind"] == KINDS[resource]
        metadata = item["metadata"]
        assert isinstance(metadata["name"], str)
        assert isinstance(metadata["labels"], dict)
        assert RFC3339.fullmatch(metadata["creationTimestamp"]), metadata
        if resource == "environments":
            assert "namespace" not in metadata  # cluster-scoped, as a Namespace
        else:
            assert metadata["namespace"] in ("production", PREVIEW)
        assert camel_case_keys(item) == []
        assert set(item) <= {"apiVersion", "kind", "metadata", "spec", "status"}
    as_yaml = yaml.safe_load(quick(world, "get", resource, "-A", "-o", "yaml").stdout)
    assert as_yaml == listed


def test_agent_object_separates_spec_and_status(world: World) -> None:
    agent = json.loads(quick(world, "get", "agent", "alpha", "-n", PREVIEW, "-o", "json").stdout)
    assert agent["metadata"]["labels"] == SUPPORT
    assert agent["spec"]["branch"] == "feature"
    assert agent["status"]["version"] == agent["spec"]["version"]
    assert agent["status"]["ready"] is True
    assert agent["status"]["url"].startswith("http://alpha--preview-feature.localhost:")
    revision = json.loads(quick(world, "get", "revisions", "alpha", "-o", "json").stdout)
    first = revision["items"][0]
    assert first["metadata"]["name"] == "alpha-1"
    assert (first["spec"]["revision"], first["spec"]["message"]) == (1, "Add agents")
    assert first["spec"]["manifest"]["metadata"]["name"] == "alpha"


def test_kubectl_flags_namespace_jsonpath_custom_columns_show_labels(world: World) -> None:
    by_namespace, by_environment = (
        quick(world, "get", "agents", flag, PREVIEW, "-o", "name").stdout for flag in ("-n", "-e")
    )
    assert by_namespace == by_environment == "agent/alpha\nagent/gamma\n"
    assert quick(world, "get", "agents", "--namespace", PREVIEW, "--no-headers").stdout

    names = cli(world, "get", "agents", "-A", "-o", "jsonpath={.items[*].metadata.name}")
    assert (names.returncode, names.stdout) == (0, "alpha gamma alpha beta")
    template = '{range .items[*]}{.metadata.name}{"\\t"}{.status.ready}{"\\n"}{end}'
    ranged = quick(world, "get", "agents", "-o", f"jsonpath={template}")
    assert ranged.stdout == "alpha\ttrue\nbeta\ttrue\n"
    one = quick(world, "get", "agent", "alpha", "-o", "jsonpath={.metadata.labels.team}")
    assert one.stdout == "support"
    filtered = quick(
        world, "get", "agents", "-A", "-o",
        "jsonpath={.items[?(@.metadata.labels.team==\"support\")].metadata.namespace}",
    )  # fmt: skip
    assert filtered.stdout == f"{PREVIEW} production"

    columns_out = cli(
        world, "get", "agents", "-A", "-o",
        "custom-columns=NAME:.metadata.name,Env:.metadata.namespace,TEAM:.metadata.labels.team",
    )  # fmt: skip
    lines = columns_out.stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "Env", "TEAM"]
    assert [columns(line) for line in lines[1:]] == [
        ["alpha", PREVIEW, "support"],
        ["gamma", PREVIEW, "<none>"],
        ["alpha", "production", "support"],
        ["beta", "production", "billing"],
    ]

    labelled = quick(world, "get", "agents", "--show-labels").stdout.splitlines()
    assert columns(labelled[0])[-1] == "LABELS"
    assert columns(labelled[1])[-1] == "team=support,tier=frontline"
    assert columns(labelled[2])[-1] == "team=billing"

    for bad, expected in [
        ("jsonpath={.items[", "unclosed action"),
        ("custom-columns=NAME", "HEADER:PATH"),
        ("table", "unknown output format 'table'"),
    ]:
        refused = quick(world, "get", "agents", "-o", bad)
        assert refused.returncode == 2, bad
        assert expected in refused.stderr, refused.stderr


def test_describe_environment(world: World) -> None:
    result = cli(world, "describe", "environment", PREVIEW)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert re.search(rf"^Name:\s+{PREVIEW}$", text, re.MULTILINE)
    assert re.search(r"^Branch:\s+feature$", text, re.MULTILINE)
    assert re.search(r"^Problems:\s+<none>$", text, re.MULTILINE)
    conditions = text.split("Conditions:\n")[1].split("Problems:")[0].splitlines()
    assert columns(conditions[1])[:3] == ["Ready", "True", "Succeeded"]
    agents = text.split("Agents:\n")[1].split("Events:")[0].splitlines()
    assert columns(agents[0]) == ["NAME", "VERSION", "DESIRED", "STATE", "READY", "AGE"]
    assert [columns(line)[0] for line in agents[1:]] == ["alpha", "gamma"]
    assert all(columns(line)[3:5] == ["Healthy", "True"] for line in agents[1:])
    events = text.split("Events:\n")[1].splitlines()
    assert any("agent/alpha: " in line and "RolloutSucceeded" in line for line in events)


def test_serve_says_where_it_listens_what_it_serves(world: World) -> None:
    log = world.shipyard.log.read_text()
    assert f"listening on http://127.0.0.1:{world.shipyard.port}/\n" in log
    lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in log.splitlines()
        if line.startswith("  ") and ":" in line
    }
    assert lines["repository"] == str(world.upstream.bare)
    assert lines["target"] == "local"
    assert lines["default branch"].startswith("the repository's HEAD")
    assert (
        "First sync done: default branch main; environments: "
        f"{PREVIEW}, production (shipyard get environments)\n"
    ) in log


def test_describe_agent(world: World) -> None:
    result = cli(world, "describe", "agent", "alpha", "-e", PREVIEW)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    fields = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if re.match(r"^ {0,2}[A-Z][A-Za-z ]+:\s+\S", line)
    }
    assert fields["Name"] == "alpha"
    assert fields["Environment"] == PREVIEW
    assert fields["Labels"] == "team=support,tier=frontline"
    assert fields["Model"] == "fake/echo-2 (temperature=0.7)"
    assert fields["Prompt"] == "file prompts/alpha.md"
    assert fields["Tools"] == "search"
    assert fields["Command"] == "python3 agent/server.py"
    assert fields["Limits"] == "memory=512Mi"
    assert fields["Pin"] == "<none>"
    versions = text.split("Environments:\n")[1].split("Conditions:")[0].splitlines()
    assert columns(versions[0])[:3] == ["ENVIRONMENT", "VERSION", "STATE"]
    placed = {columns(line)[0]: line for line in versions[1:]}
    assert placed.keys() == {PREVIEW, "production"}
    assert placed[PREVIEW].endswith("Friendlier alpha")
    assert placed["production"].endswith("Add agents")
    assert columns(placed[PREVIEW])[5] == "t"  # the author
    conditions = text.split("Conditions:\n")[1].split("Pin:")[0].splitlines()
    assert columns(conditions[1])[:3] == ["Ready", "True", "Succeeded"]
    events = text.split("Events:\n")[1].splitlines()
    assert columns(events[0]) == ["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]
    assert any("RolloutSucceeded" in line for line in events[2:])


def test_logs(world: World) -> None:
    plain = cli(world, "logs", "alpha")
    assert plain.returncode == 0, plain.stderr
    assert "agent alpha version" in plain.stdout
    stamped = quick(world, "logs", "alpha", "--since", "1h", "--timestamps")
    assert stamped.stdout
    assert all(
        re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", line)
        for line in stamped.stdout.splitlines()
    )
    follower = start(world, "logs", "beta", "-f")
    try:
        assert follower.stdout is not None
        assert "agent beta version" in readline_within(follower.stdout, what="a followed log line")
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def test_kubectl_plugin(world: World) -> None:
    direct = cli(world, "get", "agents", "--no-headers", program=KUBECTL_SHIPYARD)
    assert [columns(line)[0] for line in direct.stdout.splitlines()] == ["alpha", "beta"]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; kubectl-shipyard itself was checked")
    through = cli(world, "shipyard", "get", "agents", program=kubectl)
    assert through.returncode == 0, through.stderr
    assert columns(through.stdout.splitlines()[0])[:2] == ["NAME", "ENVIRONMENT"]


def test_errors_are_one_line_without_traceback(world: World) -> None:
    unreachable = world.environ(SHIPYARD_SERVER="http://127.0.0.1:9")
    cases = [
        (["get", "agents", "-e", "preview-x"], None,
         'error: environment "preview-x" not found (known: preview-feature, production)'),
        (["get", "agents"], unreachable,
         "error: cannot reach the Shipyard API at http://127.0.0.1:9: "),
        (["get", "agents"], world.environ(token=None),
         "error: missing bearer token (Authorization: Bearer <token>)"),
        (["rollout", "pause", "alpha"], world.environ(token=READ),
         "error: this token may read but not write"),
        (["get", "agents", "-l", "team in (a"], None,
         "error: unbalanced parentheses in selector 'team in (a'"),
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(lambda case: cli(world, *case[0], env=case[1]), cases))
    for (arguments, _, expected), result in zip(cases, results, strict=True):
        assert result.returncode == 1, (arguments, result.stderr)
        assert result.stderr.startswith(expected), (arguments, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
    for arguments, expected in [
        (["describe", "agent", "nope"], 'error: agent "nope" not found in production'),
        (["logs", "nope", "-e", PREVIEW], 'error: agent "nope" not found in preview-feature'),
        (["get", "widgets"], 'error: the server doesn\'t have a resource type "widgets"'),
        (["get", "agent", "a", "-l", "x"], "error: name cannot be provided when a selector"),
    ]:
        result = quick(world, *arguments)
        assert (result.returncode, result.stderr[: len(expected)]) == (1, expected), arguments


def test_server_and_token_from_the_config_file(world: World) -> None:
    config = world.root / "config" / "shipyard" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"server: {world.shipyard.api('')}\ntoken: {READ}\n")
    env = world.environ(token=None, XDG_CONFIG_HOME=str(config.parents[1]))
    del env["SHIPYARD_SERVER"]
    result = cli(world, "get", "agents", "-o", "name", env=env)
    assert (result.returncode, result.stdout) == (0, "agent/alpha\nagent/beta\n"), result.stderr


def test_diff_between_branches(world: World) -> None:
    bare, as_json = cli_many(
        world,
        ["diff", "feature", "--repo", str(world.upstream.bare)],
        ["diff", "feature", "--repo", str(world.upstream.work), "-o", "json"],
    )
    assert bare.returncode == 0, bare.stderr
    production = world.shipyard.environments()["production"]["commit"]
    assert bare.stdout.startswith(
        f"feature ({world.upstream.git('rev-parse', 'feature')[:12]}) against main "
        f"({production[:12]}, what production runs at {world.shipyard.api('')})\n"
    ), bare.stdout
    for line in [
        'agent "alpha" modified: ',
        "  spec.model.name: echo → echo-2",
        "  spec.model.parameters.temperature: 0.2 → 0.7",
        "  spec.resources.limits.memory: 256Mi → 512Mi",
        "  tools added: search",
        "    --- main:prompts/alpha.md",
        "    +++ feature:prompts/alpha.md",
        "    +Be friendly.",
        'agent "gamma" added: ',
        'agent "beta" removed: ',
        "3 agents changed: 1 modified, 1 added, 1 removed",
    ]:
        assert any(row.startswith(line) for row in bare.stdout.splitlines()), line
    # A working clone: production is its main branch, whatever is checked out.
    document = json.loads(as_json.stdout)
    assert (document["against"], document["basis"]) == ("main", "production")
    assert document["againstCommit"] == production
    changes = {agent["name"]: agent for agent in document["agents"]}
    assert {name: change["change"] for name, change in changes.items()} == {
        "alpha": "modified", "gamma": "added", "beta": "removed",
    }  # fmt: skip
    assert {"path": "spec.model.parameters.temperature", "from": 0.2, "to": 0.7} in changes[
        "alpha"
    ]["fields"]
    assert changes["alpha"]["toolsAdded"] == ["search"]
    unknown = quick(world, "diff", "nope", "--repo", str(world.upstream.bare))
    assert unknown.returncode == 1
    assert unknown.stderr.startswith('error: branch "nope" not found in ')


def test_diff_compares_with_the_merge_base_when_production_is_elsewhere(
    world: World, tmp_path: Path
) -> None:
    """main moved on after the branch forked: only the branch's own changes show."""
    other = Upstream(tmp_path / "other")
    other.commit(
        {"agents/alpha.yaml": agent_yaml("alpha"), "agents/beta.yaml": agent_yaml("beta")},
        message="Add agents",
        branch="main",
    )
    other.git("checkout", "--quiet", "-b", "feature")
    other.commit({"agents/alpha.yaml": agent_yaml("alpha", model="echo-2")}, message="Model")
    other.git("checkout", "--quiet", "main")
    other.commit({"agents/beta.yaml": agent_yaml("beta", temperature=0.9)}, message="Warmer")
    other.push("main", "feature")
    fork = other.git("merge-base", "main", "feature")

    result = cli(world, "diff", "feature", "--repo", str(other.bare))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"feature ({other.git('rev-parse', 'feature')[:12]}) against main ({fork[:12]}, "
        "the merge base with main)\n"
    ), result.stdout
    assert "  spec.model.name: echo → echo-2" in result.stdout.splitlines()
    assert "beta" not in result.stdout  # main's newer change is not the branch's
    assert result.stderr.startswith("warning: production at ")
    assert "which this repository does not have; comparing with the merge base" in result.stderr
    explicit = quick(world, "diff", "feature", "--repo", str(other.bare), "--against", "main")
    assert "the merge base with main" in explicit.stdout


def test_head_metrics_process_series_and_a_helpful_404(world: World) -> None:
    shipyard = world.shipyard
    head = shipyard.http.head(shipyard.api("/metrics"))
    assert (head.status_code, head.content) == (200, b"")
    assert shipyard.http.head(shipyard.api("/healthz")).status_code == 200
    assert "\nprocess_cpu_seconds_total " in shipyard.metrics()

    gone = shipyard.agent("alpha", "preview-gone")  # a removed preview's URL
    assert gone.status_code == 404
    body = gone.json()
    assert "environment preview-gone serves nothing" in body["error"]
    assert body["available"] == [  # the same agent elsewhere, nothing unrelated
        f"http://alpha--{PREVIEW}.localhost",
        "http://alpha--production.localhost",
    ]
    unknown = shipyard.agent("delta", "production").json()
    assert "serves nothing" not in unknown["error"]
    assert unknown["available"] == [  # what the environment does serve
        "http://alpha--production.localhost",
        "http://beta--production.localhost",
    ]


# Steering ----------------------------------------------------------------------------------


def test_rollout_status_exit_codes_and_watch(world: World) -> None:
    watch = start(world, "get", "agents", "-w", "--watch-timeout", "9s", "-o", "wide")
    assert watch.stdout is not None
    listed = [readline_within(watch.stdout, what="the watched table") for _ in range(3)]
    slow = '["sh", "-c", "sleep 5; exec python3 agent/server.py"]'
    crash = '["python3", "-c", "import sys; sys.exit(3)"]'
    sha = commit_on(
        world.upstream,
        "main",
        {
            "agents/alpha.yaml": alpha(command=slow, deadline=30),
            "agents/beta.yaml": agent_yaml("beta", labels=BILLING, command=crash, deadline=5),
        },
        "Slow alpha, crashing beta",
    )
    world.shipyard.wait_desired("beta", "production", sha)

    timed_out = cli(world, "rollout", "status", "alpha", "--timeout", "1s")
    assert timed_out.returncode == 3, timed_out.stderr
    assert timed_out.stdout.startswith('Waiting for agent "alpha" rollout to finish: ')
    assert timed_out.stderr == "error: timed out waiting for the condition\n"

    failed = cli(world, "rollout", "status", "beta", "-e", "production")
    assert failed.returncode == 2, (failed.stdout, failed.stderr)
    assert re.match(r'error: agent "beta" rollout to \w+ was rolled back: ', failed.stderr)

    healthy, unknown = cli_many(
        world, ["rollout", "status", "alpha", "--timeout", "30s"], ["rollout", "status", "nope"]
    )
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.endswith('agent "alpha" successfully rolled out\n')
    assert unknown.returncode == 1
    assert unknown.stderr.startswith('error: agent "nope" not found in production')

    rest, errors = watch.communicate(timeout=30)
    assert watch.returncode == 0, errors
    assert columns(listed[0])[0] == "NAME"
    assert [columns(line)[:2] for line in listed[1:]] == [
        ["alpha", "production"],
        ["beta", "production"],
    ]
    assert "NAME" not in rest
    updates = [columns(line) for line in rest.splitlines()]
    assert any(row[:2] == ["alpha", "production"] and "Progressing" in row for row in updates)
    assert any(row[:2] == ["beta", "production"] and "Failed" in row for row in updates), rest


def test_history_undo_pins_and_resume_unpins(world: World) -> None:
    first = world.shipyard.version_of("gamma", PREVIEW)
    assert first is not None
    sha = commit_on(
        world.upstream, "feature", {"agents/gamma.yaml": agent_yaml("gamma", temperature=0.9)},
        "Warmer gamma",
    )  # fmt: skip
    second = world.shipyard.wait_desired("gamma", PREVIEW, sha)
    world.shipyard.wait_version("gamma", PREVIEW, second)

    table = cli(world, "rollout", "history", "gamma", "-e", PREVIEW)
    lines = table.stdout.splitlines()
    assert lines[0] == f"agent/gamma in {PREVIEW}"
    assert columns(lines[1]) == ["REVISION", "VERSION", "COMMIT", "AUTHOR", "CHANGE", "AGE"]
    assert [columns(line)[:2] for line in lines[2:]] == [["1", first], ["2", second]]
    assert "Warmer gamma" in lines[3]
    as_yaml = quick(world, "rollout", "history", "gamma", "-e", PREVIEW, "-o", "yaml")
    assert [r["version"] for r in yaml.safe_load(as_yaml.stdout)["items"]] == [first, second]
    full = quick(world, "rollout", "history", "gamma", "-e", PREVIEW, "--revision", "2")
    assert "temperature: 0.9" in [line.strip() for line in full.stdout.splitlines()]
    assert f"  version {first} → {second}, commit " in full.stdout

    assert quick(world, "rollout", "status", "gamma", "-e", PREVIEW).returncode == 0
    before = quick(world, "describe", "agent", "gamma", "-e", PREVIEW)
    assert "temperature=0.9" in before.stdout

    undo = cli(world, "rollout", "undo", "gamma", "-e", PREVIEW, "--reason", "too warm")
    assert undo.returncode == 0, undo.stderr
    assert undo.stdout.startswith(f"agent/gamma rolled back to revision 1 ({first}) in {PREVIEW}")
    pinned = json.loads(quick(world, "get", "agent", "gamma", "-e", PREVIEW, "-o", "json").stdout)
    status = pinned["status"]
    assert (status["state"], status["version"], pinned["spec"]["version"], status["ready"]) == (
        "Pinned",
        first,
        second,
        True,
    )
    rows = quick(world, "get", "agents", "-e", PREVIEW).stdout.splitlines()
    gamma_row = next(columns(line) for line in rows if line.startswith("gamma "))
    assert gamma_row[3] == "True", rows
    # describe shows what serves (revision 1's spec), not the newest commit's.
    after = quick(world, "describe", "agent", "gamma", "-e", PREVIEW)
    assert "temperature=0.2" in after.stdout
    assert "temperature=0.9" not in after.stdout
    events = after.stdout.split("Events:\n")[1].splitlines()
    steps = [line.split()[1] for line in events if " Rollback" in line]
    assert steps == ["RollbackStarted", "RollbackSucceeded"], events
    status = quick(world, "rollout", "status", "gamma", "-e", PREVIEW)
    assert status.returncode == 0
    assert status.stdout == f'agent "gamma" successfully rolled out (pinned to {first})\n'
    described = quick(world, "describe", "agent", "gamma", "-e", PREVIEW)
    pin = next(line for line in described.stdout.splitlines() if line.startswith("Pin:"))
    assert first in pin
    assert "by ann: too warm" in pin

    resumed = cli(world, "rollout", "resume", "gamma", "-e", PREVIEW)
    assert resumed.stdout == f"agent/gamma resumed in {PREVIEW}\n"
    world.shipyard.wait_version("gamma", PREVIEW, second)
    again = quick(world, "rollout", "resume", "gamma", "-e", PREVIEW)
    assert again.returncode == 1
    assert again.stderr == f'error: agent "gamma" is not paused or pinned in {PREVIEW}\n'
    described = quick(world, "describe", "agent", "gamma", "-e", PREVIEW)
    assert re.search(r"^Pin:\s+<none>$", described.stdout, re.MULTILINE)


def test_pause_and_resume_fold_repeated_events(world: World) -> None:
    paused = cli(world, "rollout", "pause", "beta", "--reason", "freeze")
    assert paused.returncode == 0, paused.stderr
    assert re.fullmatch(r"agent/beta paused at \w+ in production\n", paused.stdout)
    resumed = cli(world, "rollout", "resume", "beta")
    assert resumed.stdout == "agent/beta resumed in production\n"
    assert quick(world, "rollout", "pause", "beta", "--reason", "freeze").returncode == 0
    assert quick(world, "rollout", "resume", "beta").returncode == 0
    described = quick(world, "describe", "agent", "beta")
    events = described.stdout.split("Events:\n")[1].splitlines()
    paused_rows = [line for line in events if " Paused " in line]
    assert len(paused_rows) == 1
    folded = r"\(x2 over \d+s\)\s+shipyard-controller\s+paused by ann: freeze$"
    assert re.search(folded, paused_rows[0]), events


def test_pause_holds_through_new_commits_until_resumed(world: World) -> None:
    held = world.shipyard.version_of("gamma", PREVIEW)
    paused = cli(world, "rollout", "pause", "gamma", "-e", PREVIEW, "--reason", "freeze")
    assert paused.returncode == 0, paused.stderr
    again = cli(world, "rollout", "pause", "gamma", "-e", PREVIEW, "--reason", "other")
    assert again.returncode == 1
    assert again.stderr.startswith("error: gamma in preview-feature is already paused")
    assert "paused by ann: freeze" in again.stderr
    steer = world.shipyard.api(f"/api/v1/environments/{PREVIEW}/agents/gamma/pause")
    conflict = world.shipyard.http.post(steer, json={"reason": "api"})
    assert conflict.status_code == 409
    assert "already paused" in conflict.json()["detail"]

    sha = commit_on(
        world.upstream, "feature", {"agents/gamma.yaml": agent_yaml("gamma", temperature=0.4)},
        "Cooler gamma",
    )  # fmt: skip
    newer = world.shipyard.wait_desired("gamma", PREVIEW, sha)
    assert newer != held
    world.shipyard.http.post(world.shipyard.api("/api/v1/sync"))
    world.shipyard.wait_desired("gamma", PREVIEW, sha)
    agent = json.loads(quick(world, "get", "agent", "gamma", "-e", PREVIEW, "-o", "json").stdout)
    held_status = agent["status"]
    assert (held_status["state"], held_status["version"], held_status["ready"]) == (
        "Pinned",
        held,
        True,
    )
    pin = next(
        line
        for line in quick(world, "describe", "agent", "gamma", "-e", PREVIEW).stdout.splitlines()
        if line.startswith("Pin:")
    )
    assert "paused by ann: freeze" in pin
    waiting = quick(world, "rollout", "status", "gamma", "-e", PREVIEW, "--no-watch")
    assert waiting.returncode == 3, waiting.stderr
    assert waiting.stdout == (
        f'Waiting for agent "gamma" rollout to finish: paused at {held} (paused by ann: '
        f'freeze); {newer} waits for "shipyard rollout resume gamma"...\n'
    )

    assert cli(world, "rollout", "resume", "gamma", "-e", PREVIEW).returncode == 0
    world.shipyard.wait_version("gamma", PREVIEW, newer)


def test_rollout_status_fails_while_the_newest_commit_cannot_be_deployed(world: World) -> None:
    broken = agent_yaml("gamma").replace("kind: Agent", "kind: Agnet")
    sha = commit_on(world.upstream, "feature", {"agents/gamma.yaml": broken}, "Typo in gamma")

    def stalled() -> bool:
        env = world.shipyard.environments()[PREVIEW]
        return env["commit"] == sha and any(
            c["type"] == "Stalled" and c["status"] == "True" for c in env["conditions"]
        )

    wait_for(stalled, what="the preview to stall on the typo")
    status = cli(world, "rollout", "status", "alpha", "-e", PREVIEW, "--timeout", "30s")
    assert status.returncode == 2, (status.stdout, status.stderr)
    assert status.stderr.startswith(
        f'error: agent "alpha" rollout is blocked: {PREVIEW} is Stalled at {sha[:12]}: '
        "invalid manifests: "
    )
    fix = commit_on(world.upstream, "feature", {"agents/gamma.yaml": agent_yaml("gamma")}, "Fix")
    wait_for(lambda: world.shipyard.environments()[PREVIEW]["commit"] == fix, what="the fix")
    fixed = quick(world, "rollout", "status", "alpha", "-e", PREVIEW, "--timeout", "60s")
    assert fixed.returncode == 0, fixed.stderr


# Errors not hidden ---------------------------------------------------------------------------


def test_an_invalid_manifest_on_a_new_branch_is_told_plainly(world: World) -> None:
    broken = agent_yaml("delta").replace("  model:\n", "  modle:\n  model:\n", 1)
    world.upstream.git("checkout", "--quiet", "-b", "broken", "main")
    sha = world.upstream.commit({"agents/delta.yaml": broken}, message="Add delta, misspelt")
    world.upstream.push("broken")
    environment = preview_of("broken")
    try:
        wait_for(
            lambda: world.shipyard.environments().get(environment, {}).get("commit") == sha,
            what=f"{environment} to observe the broken commit",
        )
        described = cli(world, "describe", "environment", environment)
        assert described.returncode == 0, described.stderr
        text = described.stdout
        problems = text.split("Problems:\n")[1].split("Agents:")[0].splitlines()
        assert problems[0].strip().startswith("agents/delta.yaml:"), problems
        assert re.match(r"agents/delta\.yaml:\d+:\d+: spec\.modle: ", problems[0].strip())
        stalled = next(line for line in text.splitlines() if line.strip().startswith("Stalled"))
        assert "nothing from this branch runs yet" in stalled
        assert "last good versions" not in stalled
        events = text.split("Events:\n")[1].splitlines()
        assert any(columns(line)[:2] == ["Warning", "ManifestInvalid"] for line in events)
        row = columns(quick(world, "get", "env", environment, "--no-headers").stdout)
        assert row[1:4] == ["broken", "False", "0/0"]
        assert re.fullmatch(r"\d+[smhd]\w*", row[4]), row  # an empty environment has an AGE
    finally:
        world.upstream.git("checkout", "--quiet", "main")
        world.upstream.git("push", "--quiet", "origin", "--delete", "broken")
        wait_for(
            lambda: environment not in world.shipyard.environments(),
            what=f"{environment} to go with its branch",
        )


def test_an_unreachable_repository_is_a_warning_not_silence(tmp_path: Path) -> None:
    """The fetch error reaches `get environments`; the token in the URL reaches nobody."""
    port = free_port()
    repo = "http://ann:s3cr3t-token@127.0.0.1:9/agents.git"
    log = tmp_path / "serve.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(SHIPYARD), "serve", "--repo", repo, "--port", str(port),
             "--state-dir", str(tmp_path / "state"), "--poll-interval", "0.3s"],
            stdout=output, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        api = f"http://127.0.0.1:{port}"
        with httpx.Client(trust_env=False, timeout=5) as http:
            source = wait_for(
                lambda: (
                    http.get(f"{api}/api/v1/environments").json()["source"]["error"]
                    and http.get(f"{api}/api/v1/environments").json()["source"]
                ),
                what="the first failed fetch",
            )
        assert source["repo"] == "http://***@127.0.0.1:9/agents.git"
        result = subprocess.run(
            [str(SHIPYARD), "get", "environments", "--server", api],
            env={**env, "XDG_CONFIG_HOME": str(tmp_path / "no-config")},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stdout) == (0, "")
        warning, nothing = result.stderr.splitlines()
        assert warning.startswith("Warning: cannot fetch http://***@127.0.0.1:9/agents.git: ")
        assert warning.endswith(
            "the controller has never fetched it, so it knows no environments yet"
        )
        assert nothing == "No resources found"
        started = log.read_text()
        assert "  repository:     http://***@127.0.0.1:9/agents.git\n" in started
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "s3cr3t-token" not in log.read_text() + result.stderr


def test_history_of_a_revision_shows_its_prompt_file_change(world: World) -> None:
    before = world.shipyard.version_of("alpha", PREVIEW)
    sha = commit_on(
        world.upstream,
        "feature",
        {"prompts/alpha.md": "You are alpha.\nBe friendly.\nAnswer in French.\n"},
        "Alpha answers in French",
    )
    after = world.shipyard.wait_desired("alpha", PREVIEW, sha)
    assert after != before  # the prompt file's text is part of the version
    world.shipyard.wait_version("alpha", PREVIEW, after)
    history = yaml.safe_load(
        quick(world, "rollout", "history", "alpha", "-e", PREVIEW, "-o", "yaml").stdout
    )["items"]
    newest = history[-1]
    assert newest["version"] == after
    shown = quick(
        world, "rollout", "history", "alpha", "-e", PREVIEW, "--revision", str(newest["number"])
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    change = lines.index("Prompt file change:")
    diff = lines[change + 1 :]
    assert diff[0].startswith(f"  --- revision {newest['number'] - 1} prompts/alpha.md")
    assert diff[1].startswith(f"  +++ revision {newest['number']} prompts/alpha.md")
    assert "  +Answer in French." in diff
    assert not any(line.startswith("  -") and "---" not in line for line in diff)
