"""The fast paths of loading agree with the slow ones they stand in for.

Schema validation first asks a compiled draft-07 validator (fastjsonschema) and only asks
the reference Draft 2020-12 validator (jsonschema) when the document is invalid, so the
two must agree on validity; versions are hashed without `dataclasses.asdict`; and
`shipyard validate` checks many files in a process pool. Each must answer exactly as the
straightforward way does.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import inspect
import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from controller.cli import validate_command
from controller.cli.main import cli
from controller.specs import loading, model, validation, versioning, yamldoc
from controller.specs.tree import FilesystemTree
from tests.conftest import WriteRepo, agent_yaml
from tests.unit import test_loading

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"
REFERENCE = jsonschema.Draft202012Validator(schemas.load())

FULL_AGENT: dict[str, Any] = {
    "apiVersion": "shipyard.dev/v1alpha1",
    "kind": "Agent",
    "metadata": {
        "name": "support-bot",
        "description": "Answers customers.",
        "labels": {"team": "support", "app.kubernetes.io/part-of": "shop", "tier": ""},
    },
    "spec": {
        "image": "ghcr.io/acme/support-bot:1.4.2",
        "run": {"command": ["python3", "agent.py"], "cwd": "agents/support"},
        "port": 8080,
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
        "secrets": [{"env": "OPENAI_API_KEY", "secretRef": {"name": "openai", "key": "api-key"}}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": 1.5, "memory": 536870912},
        },
        "replicas": 2,
        "healthCheck": {
            "path": "/healthz",
            "initialDelaySeconds": 0,
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 3,
        },
        "model": {
            "provider": "openai",
            "name": "gpt-4o-mini",
            "parameters": {
                "temperature": 0.2,
                "topP": 0.9,
                "maxTokens": 512,
                "stop": ["END"],
                "seed": 7,
            },
        },
        "prompt": {"file": "prompts/support-bot.md"},
        "tools": [
            {"name": "search", "description": "Docs.", "url": "https://search.internal/api"},
            {"name": "tickets", "mcp": {"server": "zendesk", "url": "http://mcp.internal/x"}},
        ],
        "preview": {"enabled": True, "replicas": 1, "ttl": "1h30m"},
        "rollout": {
            "strategy": "RollingUpdate",
            "progressDeadlineSeconds": 120,
            "autoRollback": True,
        },
    },
}

# Values that sit on either side of the schema's edges: types, bounds, lengths, patterns.
EDGE_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        1,
        -1,
        2,
        3,
        5,
        24,
        100,
        101,
        65535,
        65536,
        1000000,
        1000001,
        2**63 - 1,
        2**63,
        0.0,
        1.0,
        2.0,
        2.5,
        -0.5,
        1e-9,
        float("inf"),
        float("nan"),
        "",
        "x",
        "a" * 24,
        "a" * 25,
        "a" * 64,
        "Support_Bot",
        "support-bot",
        "support-bot-",
        "abc\n",
        "abc\n\n",
        "a b",
        "a\tb",
        "72h",
        "1h30m",
        "forever",
        "2d",
        "h",
        "/healthz",
        "healthz",
        "/a b",
        "https://x.example",
        "ftp://x",
        "https://",
        "100m",
        "0.5",
        "1.5m",
        "128Mi",
        "1Gb",
        "RollingUpdate",
        "Recreate",
        "shipyard.dev/v1alpha1",
        "Agent",
        "example.com/team",
        "-bad",
        "bad/",
        [],
        ["x"],
        ["x", ""],
        [1],
        {},
        {"a": 1},
        {"name": "x"},
        {"server": "s"},
        {"system": "hi"},
        {"system": "hi", "file": "p.md"},
    ]
)
EXTRA_KEYS = st.sampled_from(
    ["extra", "modle", "Name", "system", "file", "url", "mcp", "image", "run", "a/b", "-x", ""]
)


def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*path, index))


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def edge_value(draw: st.DrawFn) -> Any:
    return copy.deepcopy(draw(EDGE_VALUES))  # a fresh copy: mutations must not share it


@st.composite
def mutated_agents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest after a few mutations: deletions, wrong values, unknown keys."""
    document = copy.deepcopy(FULL_AGENT)
    if draw(st.booleans()):
        del document["spec"]["image"]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = list(paths(document))[1:]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = at(document, path[:-1])
        operation = draw(st.sampled_from(["delete", "replace", "add"]))
        if operation == "delete":
            del parent[path[-1]]
        elif operation == "replace":
            parent[path[-1]] = edge_value(draw)
        elif isinstance(parent, dict):
            parent[draw(EXTRA_KEYS)] = edge_value(draw)
        else:
            parent.append(edge_value(draw))
    return document


def agree(document: Any) -> None:
    before = copy.deepcopy(document)
    fast = validation.is_valid(document)
    assert fast == REFERENCE.is_valid(document), json.dumps(document, default=str)
    assert document == before  # the fast validator must never write defaults in
    explained = list(validation.check(document))
    assert (not explained) == fast


def test_the_full_agent_is_valid() -> None:
    assert validation.is_valid(FULL_AGENT)
    assert REFERENCE.is_valid(FULL_AGENT)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_agents())
def test_both_validators_agree_on_mutated_agents(document: dict[str, Any]) -> None:
    agree(document)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["metadata", "spec", "apiVersion", "kind"]), JSON_VALUES)
def test_both_validators_agree_on_arbitrary_sections(section: str, value: Any) -> None:
    document = copy.deepcopy(FULL_AGENT)
    document[section] = value
    agree(document)


def fixture_texts() -> Iterator[str | bytes]:
    """Every manifest text the other tests use, and the shipped examples."""
    yield agent_yaml()
    for name, member in inspect.getmembers(test_loading):
        functions = [member]
        if inspect.isclass(member) and name.startswith("Test"):
            functions = [function for _, function in inspect.getmembers(member)]
        for function in functions:
            for mark in getattr(function, "pytestmark", []):
                if mark.name != "parametrize":
                    continue
                for param in mark.args[1]:
                    values = param.values if hasattr(param, "values") else (param,)
                    yield from (value for value in values if isinstance(value, str | bytes))
    for case in test_loading.SCHEMA_CASES:
        manifest = case.values[0]
        assert isinstance(manifest, str)
        yield manifest
    for path in sorted((EXAMPLES / "agents").glob("*.yaml")):
        yield path.read_text(encoding="utf-8")


def fixture_documents() -> list[Any]:
    documents: list[Any] = list(schemas.load().get("examples", []))
    for text in fixture_texts():
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        with contextlib.suppress(yamldoc.YamlProblem):
            documents += [document.value for document in yamldoc.parse(raw)]
    return documents


def test_both_validators_agree_on_every_fixture() -> None:
    documents = fixture_documents()
    assert len(documents) > 30
    for document in documents:
        agree(document)


def test_the_fast_schema_only_restates_the_draft_and_the_end_anchors() -> None:
    shipped, fast = schemas.load(), validation.fast_schema()
    assert fast["$schema"] == validation.DRAFT_07
    assert shipped["$schema"].endswith("2020-12/schema")
    shipped_text = json.dumps({**shipped, "$schema": validation.DRAFT_07})
    restated = json.dumps(fast).replace("(?=\\\\n?\\\\Z)", "$")
    assert restated == shipped_text
    assert schemas.load() == json.loads(schemas.text())  # the shipped schema is untouched


@pytest.mark.parametrize("name", ["support-bot\n", "support-bot\n\n", "support-bot "])
def test_python_end_anchor_semantics_are_kept(name: str) -> None:
    document = copy.deepcopy(FULL_AGENT)
    document["metadata"]["name"] = name
    agree(document)


# --- versions -----------------------------------------------------------------------


def asdict_version(spec: Any, referenced_files: dict[str, bytes]) -> str:
    """How versions were computed before: `dataclasses.asdict`, then canonical JSON."""
    normalized = dataclasses.asdict(spec)
    if spec.prompt.file is not None:
        normalized["prompt"]["text"] = None
    if spec.observability == model.Observability():
        del normalized["observability"]  # added later; left out at its defaults
    rollout = normalized["rollout"]
    analyses = [rollout["analysis"], *(step["analysis"] for step in rollout["steps"])]
    for analysis in analyses:
        if analysis is not None and analysis["queries"] == ():
            del analysis["queries"]  # PromQL checks, added later; left out unset
    for name in ("steps", "analysis", "sticky_header"):
        if rollout[name] in ((), None):
            del rollout[name]  # canary settings, added later; left out unset
    if rollout["require_evals"] is False:
        del rollout["require_evals"]  # the eval gate, added later; left out unset
    digest = hashlib.sha256()
    digest.update(json.dumps(normalized, sort_keys=True, separators=(",", ":")).encode())
    for path in sorted(referenced_files):
        digest.update(b"\x00file\x00" + path.encode() + b"\x00")
        digest.update(hashlib.sha256(referenced_files[path]).digest())
    return digest.hexdigest()[: versioning.VERSION_LENGTH]


def test_versions_are_the_ones_asdict_gave() -> None:
    result = loading.collect(FilesystemTree(EXAMPLES))
    assert result.ok
    for agent in result.agents:
        files = {}
        if agent.spec.prompt.file is not None:
            files[agent.spec.prompt.file] = (EXAMPLES / agent.spec.prompt.file).read_bytes()
        assert agent.version == asdict_version(agent.spec, files)


def test_inline_prompts_are_part_of_the_version(write_repo: WriteRepo) -> None:
    def version(prompt: str) -> str:
        manifest = agent_yaml().replace("file: prompts/support-bot.md", f"system: {prompt}")
        (agent,) = loading.load(FilesystemTree(write_repo({"agents/a.yaml": manifest})))
        assert agent.version == asdict_version(agent.spec, {})
        return agent.version

    assert version("Be brief.") != version("Be thorough.")


# --- the YAML reader ----------------------------------------------------------------

PLAIN_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAIN_VALUES, st.booleans())
def test_reader_reads_what_safe_load_reads(value: Any, flow: bool) -> None:
    """Resolving tags by first character gives what PyYAML's resolver gives."""
    text = yaml.safe_dump(value, default_flow_style=flow)
    (document,) = yamldoc.parse(text)
    assert document.value == yaml.safe_load(text)
    assert not document.problems


# --- the process pool ---------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


@pytest.fixture
def mixed_repo(write_repo: WriteRepo) -> Path:
    """Valid and invalid manifests, broken YAML and names defined twice far apart."""
    files: dict[str, str | bytes] = {}
    for index in range(30):
        name = f"agent-{index:02d}"
        files[f"prompts/{name}.md"] = f"prompt {index}\n"
        files[f"agents/{name}.yaml"] = agent_yaml(name)
    files["agents/agent-03.yaml"] = agent_yaml("agent-03").replace("0.2", "3.5")
    files["agents/agent-11.yaml"] = "{{{"
    files["agents/agent-17.yaml"] = agent_yaml("agent-02")  # a duplicate, chunks away
    files["agents/agent-29.yaml"] = agent_yaml("agent-02") + "---\n" + agent_yaml("agent-28")
    files["agents/agent-20.yaml"] = b"\xff\xfe"
    return write_repo(files)


@pytest.mark.parametrize("output", ["text", "json"])
def test_pool_and_serial_give_the_same_report(
    mixed_repo: Path, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = invoke("validate", str(mixed_repo), "-o", output)
    pools: list[int | None] = []

    class RecordedPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int | None = None) -> None:
            pools.append(max_workers)
            super().__init__(max_workers)

    monkeypatch.setattr(validate_command, "ProcessPoolExecutor", RecordedPool)
    monkeypatch.setattr(validate_command, "_workers", lambda file_count: 2)
    pooled = invoke("validate", str(mixed_repo), "-o", output)
    assert pools == [2]
    assert pooled == serial
    assert serial[0] == 1
    assert "already defined at agents/agent-02.yaml:1" in serial[1]


def test_pool_splits_files_into_chunks_in_order(mixed_repo: Path) -> None:
    files = FilesystemTree(mixed_repo).manifest_paths("agents")
    other = ["agents/x.yaml", "agents/y.yaml"]
    chunks = validate_command._chunks([(mixed_repo, files), (Path("/elsewhere"), other)], 2)
    assert len(chunks) > 2
    assert [path for repo, chunk in chunks if repo == mixed_repo for path in chunk] == files
    assert [path for repo, chunk in chunks if repo != mixed_repo for path in chunk] == other


def test_small_runs_stay_in_process() -> None:
    assert validate_command._workers(validate_command.PARALLEL_FROM_FILES - 1) == 1
    assert validate_command._workers(validate_command.PARALLEL_FROM_FILES) >= 1


def test_cli_reports_what_collect_finds(mixed_repo: Path) -> None:
    result = loading.collect(FilesystemTree(mixed_repo))
    code, out = invoke("validate", str(mixed_repo), "-o", "json")
    assert code == 1
    report = json.loads(out)
    assert [problem["message"] for problem in report["problems"]] == [
        problem.message for problem in result.problems
    ]
    assert [(agent["name"], agent["version"]) for agent in report["agents"]] == [
        (agent.name, agent.version) for agent in result.agents
    ]
    assert report["files"] == result.files
