"""`shipyard validate` as people and CI use it: exit codes, text lines, JSON, paths."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from tests.conftest import WriteRepo, agent_yaml

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"


def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    with contextlib.chdir(cwd or Path.cwd()):
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_example_repository_is_valid() -> None:
    code, out, _ = run("validate", str(EXAMPLE_REPO))
    assert code == 0
    assert out.strip() == "3 agents and 1 eval suite in 4 files: all valid"


def test_invalid_manifest_exits_1_with_one_line_per_problem(write_repo: WriteRepo) -> None:
    root = write_repo(
        {
            "agents/a.yaml": agent_yaml().replace("temperature: 0.2", "temperature: 3.5"),
            "agents/b.yaml": "kind: [",
            "agents/c.yaml": agent_yaml("other"),
            "prompts/support-bot.md": "p",
            "prompts/other.md": "p",
        }
    )
    code, out, _ = run("validate", cwd=root)
    assert code == 1
    first, second, summary = out.splitlines()
    assert first == (
        "agents/a.yaml:14:20: spec.model.parameters.temperature: "
        "3.5 is greater than the maximum of 2"
    )
    # libyaml and the pure-Python parser word the rest differently.
    assert second.startswith("agents/b.yaml:2:1: invalid YAML: while parsing a flow node")
    assert summary == "2 problems in 2 of 3 files; 1 agent valid"


def test_json_output_is_machine_readable(write_repo: WriteRepo) -> None:
    root = write_repo(
        {
            "agents/a.yaml": agent_yaml().replace("name: echo-1", "name: ''"),
            "agents/c.yaml": agent_yaml("other"),
            "prompts/support-bot.md": "p",
            "prompts/other.md": "p",
        }
    )
    code, out, _ = run("validate", str(root), "-o", "json")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert report["files"] == 2
    assert [agent["name"] for agent in report["agents"]] == ["other"]
    (problem,) = report["problems"]
    assert problem["field"] == "spec.model.name"
    assert problem["line"] == 12
    assert problem["file"].endswith("agents/a.yaml")
    assert "should be non-empty" in problem["message"]


def test_single_file_paths_resolve_prompts_from_the_repository_root(
    write_repo: WriteRepo,
) -> None:
    root = write_repo(
        {"agents/a.yaml": agent_yaml(), "prompts/support-bot.md": "p", ".git/HEAD": "ref"}
    )
    code, out, _ = run("validate", "agents/a.yaml", cwd=root)
    assert (code, out.strip()) == (0, "1 agent in 1 file: all valid")
    code, out, _ = run("validate", str(root / "agents"), cwd=root.parent)
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["validate", "no/such/path"], "'no/such/path' does not exist", id="missing"),
        pytest.param(["validate", "-o", "xml"], "'xml' is not one of 'text', 'json'", id="format"),
        pytest.param(["validate", "--bogus"], "No such option '--bogus'", id="flag"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    code, _, err = run(*args, cwd=tmp_path)
    assert code == 2
    assert message in err


def test_no_manifests_found_is_an_error(tmp_path: Path) -> None:
    code, _, err = run("validate", cwd=tmp_path)
    assert code == 1
    assert "no manifests (*.yaml, *.yml) found in ." in err


def test_schema_command_prints_the_shipped_schema() -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["apiVersion"]["const"] == "shipyard.dev/v1alpha1"


@pytest.mark.parametrize("program", ["shipyard", "kubectl-shipyard"])
def test_console_scripts_are_installed(program: str, write_repo: WriteRepo) -> None:
    """The real executables, as pre-commit and `kubectl shipyard` run them."""
    executable = Path(sys.executable).parent / program
    root = write_repo({"agents/a.yaml": "- not a mapping\n"})
    done = subprocess.run(
        [str(executable), "validate", str(root)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "a manifest must be a mapping" in done.stdout
    assert "Traceback" not in done.stderr


def test_repository_root_is_found_above_a_manifest_path(tmp_path: Path) -> None:
    """As the GitHub Action runs it: inside a repository, naming only its agents dir."""
    code, out, _ = run("validate", "agents", cwd=EXAMPLE_REPO)
    assert (code, out.strip()) == (0, "3 agents in 3 files: all valid")
    single = EXAMPLE_REPO / "agents" / "triage.yaml"
    code, out, _ = run("validate", str(single), cwd=tmp_path)
    assert (code, out.strip()) == (0, "1 agent in 1 file: all valid")


def test_problems_are_sorted_by_file_then_line_with_repository_relative_paths(
    write_repo: WriteRepo, tmp_path: Path
) -> None:
    bad_limits = "  resources:\n    limits:\n      memory: 12 GB\n"
    root = write_repo(
        {
            "agents/b.yaml": agent_yaml("bee").replace("temperature: 0.2", "temperature: 3.5")
            + bad_limits,
            "agents/a.yaml": agent_yaml().replace("name: echo-1", "name: ''"),
            "prompts/support-bot.md": "p",
            "prompts/bee.md": "p",
        }
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, _ = run("validate", str(root), "agents/b.yaml", cwd=elsewhere)
    assert code == 2  # agents/b.yaml does not exist here: paths are the caller's
    code, out, _ = run("validate", str(root), str(root / "agents" / "b.yaml"), cwd=elsewhere)
    assert code == 1
    lines = out.splitlines()[:-1]
    located = [(line.split(":")[0], int(line.split(":")[1])) for line in lines]
    assert located == sorted(located)
    assert [file for file, _ in located] == ["agents/a.yaml", "agents/b.yaml", "agents/b.yaml"]
    assert out.splitlines()[-1] == "3 problems in 2 of 2 files; 0 agents valid"  # no duplicates


def test_a_pattern_is_told_in_words_never_as_a_regular_expression(write_repo: WriteRepo) -> None:
    limits = "  resources:\n    limits:\n      memory: 12 GB\n      cpu: two\n"
    root = write_repo({"agents/a.yaml": agent_yaml() + limits, "prompts/support-bot.md": "p"})
    code, out, _ = run("validate", cwd=root)
    assert code == 1
    assert "spec.resources.limits.memory: '12 GB' is not a Kubernetes quantity such as 512Mi" in out
    assert "spec.resources.limits.cpu: 'two' is not a Kubernetes CPU quantity" in out
    assert "^" not in out
    assert "$" not in out


def test_every_schema_pattern_has_words() -> None:
    from controller.specs import validation  # noqa: PLC0415 - the table under test

    patterns: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                patterns.append(node["pattern"])
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    collect(json.loads(run("schema")[1]))
    assert patterns
    assert [p for p in patterns if p not in validation.PATTERN_MEANINGS] == []


def test_outside_an_agents_repository_it_says_so(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "service.yaml").write_text("apiVersion: v1\nkind: Service\n")
    (tmp_path / "values.yaml").write_text("replicas: 2\n")
    code, out, err = run("validate", cwd=tmp_path)
    assert (code, out) == (1, "")
    assert "'.' is not in an agents repository: " in err
    assert "has no agents/ directory" in err
    code, out, _ = run("validate", "k8s/service.yaml", cwd=tmp_path)  # named: checked
    assert code == 1
    assert out.startswith("k8s/service.yaml:1:13: apiVersion: 'v1' is not supported")
