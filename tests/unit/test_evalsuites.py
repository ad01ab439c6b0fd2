"""Eval suites load like manifests: located problems, and hostile files refused quickly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.specs import evalsuites
from controller.specs.tree import FilesystemTree

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"

GOOD = """\
apiVersion: shipyard.dev/v1alpha1
kind: EvalSuite
metadata:
  name: basics
spec:
  agent: alpha
  cases:
    - name: up
      request: {method: GET, path: /healthz}
      expect: {status: 200}
"""


def load(
    tmp_path: Path, text: str | bytes, agents: set[str] | None = None
) -> evalsuites.SuiteResult:
    (tmp_path / "evals").mkdir(exist_ok=True)
    path = tmp_path / "evals" / "suite.yaml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return evalsuites.collect(FilesystemTree(tmp_path), {"alpha"} if agents is None else agents)


def messages(result: evalsuites.SuiteResult) -> list[str]:
    return [problem.render() for problem in result.problems]


def test_the_example_suite_is_valid() -> None:
    result = evalsuites.collect(FilesystemTree(EXAMPLE), {"support-bot"})
    assert messages(result) == []
    (suite,) = result.suites
    assert (suite.name, suite.agent, len(suite.cases)) == ("support-basics", "support-bot", 2)


def test_a_valid_suite_builds_cases_and_a_content_digest(tmp_path: Path) -> None:
    first = load(tmp_path, GOOD).suites[0]
    assert first.cases[0].method == "GET"
    assert first.cases[0].body is None
    again = load(tmp_path, GOOD + "      # a comment changes nothing\n").suites[0]
    assert again.digest == first.digest
    changed = load(tmp_path, GOOD.replace("200", "204")).suites[0]
    assert changed.digest != first.digest


def test_wrong_types_and_unknown_fields_are_located(tmp_path: Path) -> None:
    text = GOOD.replace("expect: {status: 200}", "expect: {status: '200', contans: [x]}")
    assert messages(load(tmp_path, text)) == [
        'evals/suite.yaml:10:31: spec.cases[0].expect.contans: unknown field "contans" '
        '(did you mean "contains"?)',
        "evals/suite.yaml:10:24: spec.cases[0].expect.status: must be an integer, not the "
        "string '200'",
    ]


def test_an_unknown_agent_is_named_with_the_known_ones(tmp_path: Path) -> None:
    (message,) = messages(load(tmp_path, GOOD, agents={"beta", "gamma"}))
    assert message == (
        'evals/suite.yaml:1:1: spec.agent: no agent is named "alpha" (agents: beta, gamma)'
    )


def test_duplicate_cases_and_json_with_body_are_refused(tmp_path: Path) -> None:
    text = (
        GOOD
        + """\
    - name: up
      request: {path: /chat, json: {a: 1}, body: text}
      expect: {status: 200}
"""
    )
    assert messages(load(tmp_path, text)) == [
        'evals/suite.yaml:11:13: spec.cases[1].name: case "up" appears twice in this suite',
        "evals/suite.yaml:12:16: spec.cases[1].request: set json or body, not both",
    ]


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(\\w*)*x", r"((ab)*c)+", r"(?:x|(y+))*z", r"(a{1,9})+", r"(a|aa)+b", r"(ab|cd)*"],
)
def test_nested_quantifiers_are_refused(tmp_path: Path, pattern: str) -> None:
    text = GOOD.replace("expect: {status: 200}", f'expect: {{regex: "{pattern}"}}')
    (message,) = messages(load(tmp_path, text))
    assert "expect.regex: nested quantifiers or alternatives" in message


@pytest.mark.parametrize("pattern", [r"ab+c", r"(ab)+", r"x{3}(y|z)+", r"\\[bot@[0-9a-f]+\\]"])
def test_ordinary_patterns_pass(tmp_path: Path, pattern: str) -> None:
    text = GOOD.replace("expect: {status: 200}", f'expect: {{regex: "{pattern}"}}')
    assert messages(load(tmp_path, text)) == []


def test_a_pattern_that_does_not_compile_says_why(tmp_path: Path) -> None:
    text = GOOD.replace("expect: {status: 200}", 'expect: {regex: "(unclosed"}')
    (message,) = messages(load(tmp_path, text))
    assert "not a valid regular expression: missing )" in message


def test_an_invalid_or_remote_json_schema_is_refused(tmp_path: Path) -> None:
    bad = GOOD.replace("expect: {status: 200}", "expect: {jsonSchema: {type: 12}}")
    assert "expect.jsonSchema: not a valid JSON Schema" in messages(load(tmp_path, bad))[0]
    remote = GOOD.replace(
        "expect: {status: 200}", "expect: {jsonSchema: {$ref: 'http://127.0.0.1:1/s.json'}}"
    )
    assert "only local $refs" in messages(load(tmp_path, remote))[0]


def test_hostile_files_get_errors_not_hangs(tmp_path: Path) -> None:
    huge = "# pad\n" * (evalsuites.SUITE_BYTES // 6 + 1)
    assert "over the limit" in messages(load(tmp_path, huge))[0]
    deep = GOOD.replace(
        "expect: {status: 200}", "expect: {jsonSchema: " + "[" * 200 + "]" * 200 + "}"
    )
    assert "nested" in messages(load(tmp_path, deep))[0]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    assert messages(load(tmp_path, bomb))
    assert "unknown alias" in messages(load(tmp_path, "a: &a [*a]\n"))[0]  # cyclic
    assert "NUL" in messages(load(tmp_path, b"kind: EvalSuite\x00"))[0]
    assert "not valid UTF-8" in messages(load(tmp_path, b"kind: \xff\n"))[0]
    many = GOOD + "".join(
        f"    - name: c{i}\n      request: {{path: /}}\n      expect: {{status: 200}}\n"
        for i in range(250)
    )
    assert "spec.cases" in messages(load(tmp_path, many))[0]
    assert "kind" in messages(load(tmp_path, GOOD.replace("EvalSuite", "Agent")))[0]


def test_validate_checks_suites_beside_manifests(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "alpha.yaml").write_text(
        (EXAMPLE / "agents" / "support-bot.yaml").read_text().replace("support-bot", "alpha")
        .replace("file: agents/prompts/alpha.md", "system: You are alpha.")
    )  # fmt: skip
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "a.yaml").write_text(GOOD.replace("agent: alpha", "agent: nobody"))
    shipyard = Path(sys.executable).parent / "shipyard"
    whole = subprocess.run(
        [str(shipyard), "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert whole.returncode == 1, whole.stdout + whole.stderr
    assert (
        'evals/a.yaml:1:1: spec.agent: no agent is named "nobody" (agents: alpha)' in whole.stdout
    )
    one = subprocess.run(
        [str(shipyard), "validate", "evals/a.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert one.returncode == 1
    assert "no agent is named" in one.stdout
    (tmp_path / "evals" / "a.yaml").write_text(GOOD)
    fine = subprocess.run(
        [str(shipyard), "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert fine.returncode == 0, fine.stdout
