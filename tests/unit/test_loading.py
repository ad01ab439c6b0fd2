"""The loader turns a repository into typed, versioned agents, or into every problem at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.errors import ManifestInvalid
from controller.specs import loading
from controller.specs.tree import FilesystemTree
from tests.conftest import WriteRepo, agent_yaml

PROMPT = "You are a helpful support agent.\n"


def collect(root: Path) -> loading.LoadResult:
    return loading.collect(FilesystemTree(root))


def rendered(result: loading.LoadResult) -> list[str]:
    return [problem.render() for problem in result.problems]


class TestValidRepository:
    def test_loads_typed_agents_with_defaults(self, write_repo: WriteRepo) -> None:
        root = write_repo({"agents/support.yaml": agent_yaml(), "prompts/support-bot.md": PROMPT})
        (agent,) = loading.load(FilesystemTree(root))
        assert agent.name == "support-bot"
        assert agent.spec.model.parameters.temperature == 0.2
        assert agent.spec.prompt.text == PROMPT
        assert agent.spec.prompt.file == "prompts/support-bot.md"
        assert agent.spec.replicas == 1
        assert agent.spec.preview.ttl_seconds == 72 * 3600
        assert agent.spec.run is not None
        assert agent.spec.run.command == ("python3", "agent/server.py")
        assert agent.file == "agents/support.yaml"
        assert len(agent.version) == 10

    def test_multi_document_files_and_yml_suffix(self, write_repo: WriteRepo) -> None:
        both = agent_yaml("one") + "---\n" + agent_yaml("two") + "---\n"
        root = write_repo(
            {
                "agents/pair.yml": both,
                "agents/nested/three.yaml": agent_yaml("three"),
                "agents/notes.txt": "not a manifest",
                "prompts/one.md": "1",
                "prompts/two.md": "2",
                "prompts/three.md": "3",
            }
        )
        result = collect(root)
        assert result.ok, rendered(result)
        assert sorted(agent.name for agent in result.agents) == ["one", "three", "two"]
        assert result.files == 2

    def test_repository_without_manifests_is_empty_not_an_error(
        self, write_repo: WriteRepo
    ) -> None:
        result = collect(write_repo({"README.md": "nothing here"}))
        assert result.ok
        assert result.agents == ()


class TestVersions:
    def base(self, write_repo: WriteRepo, manifest: str, prompt: str = PROMPT) -> str:
        root = write_repo({"agents/a.yaml": manifest, "prompts/support-bot.md": prompt})
        (agent,) = loading.load(FilesystemTree(root))
        return agent.version

    def test_same_content_same_version(self, write_repo: WriteRepo, tmp_path: Path) -> None:
        first = self.base(write_repo, agent_yaml())
        assert self.base(write_repo, agent_yaml()) == first

    def test_prompt_file_bytes_change_the_version(self, write_repo: WriteRepo) -> None:
        first = self.base(write_repo, agent_yaml())
        assert self.base(write_repo, agent_yaml(), prompt=PROMPT + "Be brief.\n") != first

    def test_spec_change_changes_the_version(self, write_repo: WriteRepo) -> None:
        first = self.base(write_repo, agent_yaml())
        warmer = agent_yaml().replace("temperature: 0.2", "temperature: 0.7")
        assert self.base(write_repo, warmer) != first

    def test_formatting_and_spelled_out_defaults_do_not(self, write_repo: WriteRepo) -> None:
        first = self.base(write_repo, agent_yaml())
        reformatted = "# a comment\n" + agent_yaml().replace(
            'command: ["python3", "agent/server.py"]',
            "command:\n      - python3\n      - agent/server.py",
        )
        assert self.base(write_repo, reformatted) == first
        with_defaults = agent_yaml() + "  replicas: 1\n  preview:\n    enabled: true\n"
        assert self.base(write_repo, with_defaults) == first


def problem_for(write_repo: WriteRepo, manifest: str | bytes) -> list[str]:
    files: dict[str, str | bytes] = {"agents/a.yaml": manifest, "prompts/support-bot.md": PROMPT}
    result = collect(write_repo(files))
    assert not result.ok
    assert result.agents == ()
    return rendered(result)


SCHEMA_CASES = [
    pytest.param(
        agent_yaml().replace("temperature: 0.2", "temperature: 3.5"),
        "agents/a.yaml:14:20: spec.model.parameters.temperature: "
        "3.5 is greater than the maximum of 2",
        id="number-above-maximum",
    ),
    pytest.param(
        agent_yaml().replace("  model:", "  modle:"),
        'agents/a.yaml:10:3: spec.modle: unknown field "modle" (did you mean "model"?)',
        id="unknown-field-with-suggestion",
    ),
    pytest.param(
        agent_yaml().replace("name: support-bot", "name: Support_Bot"),
        "agents/a.yaml:4:9: metadata.name: must be a DNS-1123 label",
        id="name-not-dns-label",
    ),
    pytest.param(
        agent_yaml().replace("    name: echo-1\n", ""),
        "agents/a.yaml:11:5: spec.model.name: required field is missing",
        id="missing-required-field",
    ),
    pytest.param(
        agent_yaml().replace("apiVersion: shipyard.dev/v1alpha1", "apiVersion: apps/v1"),
        "agents/a.yaml:1:13: apiVersion: 'apps/v1' is not supported; "
        "the supported apiVersion is shipyard.dev/v1alpha1",
        id="unknown-api-version",
    ),
    pytest.param(
        agent_yaml().replace("kind: Agent", "kind: Deployment"),
        "agents/a.yaml:2:7: kind: 'Deployment' is not supported; the supported kind is Agent",
        id="unknown-kind",
    ),
    pytest.param(
        agent_yaml().replace('  run:\n    command: ["python3", "agent/server.py"]\n', ""),
        "agents/a.yaml:8:3: spec: set spec.image (for Kubernetes) or spec.run",
        id="neither-image-nor-run",
    ),
    pytest.param(
        agent_yaml().replace("    file: prompts/support-bot.md", "    file: p.md\n    system: hi"),
        "agents/a.yaml:16:5: spec.prompt: set exactly one of prompt.system",
        id="prompt-both-system-and-file",
    ),
    pytest.param(
        agent_yaml().replace("temperature: 0.2", "temperature: warm"),
        "spec.model.parameters.temperature: must be a number, not the string 'warm'",
        id="wrong-type",
    ),
    pytest.param(
        agent_yaml() + "  tools:\n    - name: search\n",
        "spec.tools[0]: a tool needs a url (HTTP endpoint) or an mcp server reference",
        id="tool-without-endpoint",
    ),
    pytest.param(
        agent_yaml() + "  preview:\n    ttl: forever\n",
        "spec.preview.ttl: must be a duration such as 72h",
        id="bad-duration",
    ),
]


@pytest.mark.parametrize(("manifest", "expected"), SCHEMA_CASES)
def test_schema_problems_name_file_line_field_and_fix(
    write_repo: WriteRepo, manifest: str, expected: str
) -> None:
    problems = problem_for(write_repo, manifest)
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once(write_repo: WriteRepo) -> None:
    manifest = (
        agent_yaml()
        .replace("temperature: 0.2", "temperature: 3.5")
        .replace("name: support-bot", "name: BAD")
        .replace("  model:", "  colour: blue\n  model:")
    )
    problems = problem_for(write_repo, manifest)
    assert len(problems) == 3, problems
    assert [p.split(": ")[1] for p in problems] == [
        "metadata.name",
        "spec.colour",
        "spec.model.parameters.temperature",
    ]


class TestSemanticChecks:
    def test_duplicate_agent_names_across_files(self, write_repo: WriteRepo) -> None:
        root = write_repo(
            {
                "agents/a.yaml": agent_yaml(),
                "agents/b.yaml": "\n" + agent_yaml(),
                "prompts/support-bot.md": PROMPT,
            }
        )
        result = collect(root)
        assert rendered(result) == [
            'agents/b.yaml:2:1: metadata.name: agent "support-bot" is already defined '
            "at agents/a.yaml:1"
        ]
        assert [agent.file for agent in result.agents] == ["agents/a.yaml"]

    @pytest.mark.parametrize(
        ("prompt_file", "expected"),
        [
            pytest.param("prompts/missing.md", "'prompts/missing.md' does not exist", id="missing"),
            pytest.param(
                "../outside.md", "'../outside.md' points outside the repository", id="dotdot"
            ),
            pytest.param(
                "/etc/passwd",
                "'/etc/passwd' must be relative to the repository root, not absolute",
                id="absolute",
            ),
            pytest.param("prompts", "'prompts' is not a regular file", id="directory"),
        ],
    )
    def test_prompt_file_must_be_a_file_inside_the_repository(
        self, write_repo: WriteRepo, prompt_file: str, expected: str
    ) -> None:
        manifest = agent_yaml().replace("prompts/support-bot.md", prompt_file)
        problems = problem_for(write_repo, manifest)
        assert problems == [f"agents/a.yaml:16:11: spec.prompt.file: prompt file {expected}"]

    def test_prompt_symlink_pointing_outside_is_rejected(
        self, write_repo: WriteRepo, tmp_path: Path
    ) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("top secret")
        root = write_repo({"agents/a.yaml": agent_yaml()})
        (root / "prompts").mkdir()
        os.symlink(secret, root / "prompts" / "support-bot.md")
        (problem,) = rendered(collect(root))
        assert "symlink that points outside the repository" in problem
        assert "top secret" not in problem

    def test_prompt_file_over_size_limit(self, write_repo: WriteRepo) -> None:
        root = write_repo({"agents/a.yaml": agent_yaml(), "prompts/support-bot.md": "x" * 300_000})
        (problem,) = rendered(collect(root))
        assert problem == (
            "agents/a.yaml:16:11: spec.prompt.file: prompt file 'prompts/support-bot.md' "
            "is 300000 bytes, over the limit of 262144"
        )

    def test_prompt_file_must_be_utf8(self, write_repo: WriteRepo) -> None:
        root = write_repo({"agents/a.yaml": agent_yaml(), "prompts/support-bot.md": b"\xff\xfe"})
        (problem,) = rendered(collect(root))
        assert problem.endswith("prompt file 'prompts/support-bot.md' is not UTF-8 text")

    def test_env_names_and_reserved_variables(self, write_repo: WriteRepo) -> None:
        manifest = agent_yaml() + (
            "  env:\n"
            "    - {name: 1BAD, value: x}\n"
            "    - {name: PORT, value: '9'}\n"
            "    - {name: GOOD, value: x}\n"
            "  secrets:\n"
            "    - env: GOOD\n"
            "      secretRef: {name: openai, key: api-key}\n"
            "    - env: SHIPYARD_VERSION\n"
            "      secretRef: {name: openai, key: api-key}\n"
        )
        problems = problem_for(write_repo, manifest)
        assert problems == [
            "agents/a.yaml:18:14: spec.env[0].name: '1BAD' is not a valid environment "
            "variable name (letters, digits and '_', not starting with a digit)",
            "agents/a.yaml:19:14: spec.env[1].name: 'PORT' is set by Shipyard itself "
            "(PORT and SHIPYARD_* are reserved)",
            "agents/a.yaml:22:12: spec.secrets[0].env: 'GOOD' is already set by spec.env[2].name",
            "agents/a.yaml:24:12: spec.secrets[1].env: 'SHIPYARD_VERSION' is set by Shipyard "
            "itself (PORT and SHIPYARD_* are reserved)",
        ]

    def test_env_value_with_a_nul_character(self, write_repo: WriteRepo) -> None:
        manifest = agent_yaml() + '  env:\n    - {name: X, value: "a\\0b"}\n'
        assert problem_for(write_repo, manifest) == [
            "agents/a.yaml:18:24: spec.env[0].value: contains a NUL character"
        ]

    def test_incomplete_secret_reference(self, write_repo: WriteRepo) -> None:
        manifest = agent_yaml() + "  secrets:\n    - env: TOKEN\n      secretRef: {name: openai}\n"
        problems = problem_for(write_repo, manifest)
        assert problems == [
            "agents/a.yaml:19:18: spec.secrets[0].secretRef.key: required field is missing"
        ]

    def test_secret_values_are_not_accepted(self, write_repo: WriteRepo) -> None:
        manifest = agent_yaml() + "  secrets:\n    - env: TOKEN\n      value: sk-live-123\n"
        problems = problem_for(write_repo, manifest)
        assert any('unknown field "value"' in problem for problem in problems)
        assert any("secretRef: required field is missing" in problem for problem in problems)

    def test_run_cwd_must_stay_inside(self, write_repo: WriteRepo) -> None:
        manifest = agent_yaml().replace(
            '    command: ["python3", "agent/server.py"]',
            '    command: ["python3", "agent/server.py"]\n    cwd: ../../etc',
        )
        (problem,) = problem_for(write_repo, manifest)
        assert problem.endswith("spec.run.cwd: '../../etc' points outside the repository")


class TestHostileInput:
    """Every hostile file gets a clear problem; nothing raises, nothing hangs."""

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            pytest.param(
                "metadata: {name: [1, 2\n",
                "agents/a.yaml:2:1: invalid YAML: while parsing a flow sequence",
                id="invalid-yaml",
            ),
            pytest.param(
                agent_yaml() + "kind: Agent\n",
                'agents/a.yaml:17:1: duplicate key "kind" (first defined at line 2)',
                id="duplicate-key",
            ),
            pytest.param(
                "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                + "".join(
                    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
                    for i in range(8)
                ),
                "agents/a.yaml:1:1: document expands to more than 100000 values through aliases",
                id="billion-laughs",
            ),
            pytest.param(
                "a: " + "[" * 5000 + "]" * 5000 + "\n",
                "document is nested deeper than 64 levels",
                id="deep-nesting",
            ),
            pytest.param(
                b"apiVersion: shipyard.dev/v1alpha1\nkind: \xff\xfeAgent\n",
                "agents/a.yaml:2:7: not valid UTF-8 (byte 0xff); manifests must be UTF-8 text",
                id="not-utf8",
            ),
            pytest.param(
                b"\x7fELF\x02\x01\x01\x00\x00\x00",
                "agents/a.yaml:1:1: binary file (contains NUL bytes), not YAML",
                id="binary",
            ),
            pytest.param(
                "- apiVersion: shipyard.dev/v1alpha1\n",
                "agents/a.yaml:1:1: a manifest must be a mapping with apiVersion, kind, "
                "metadata and spec, not a list",
                id="document-is-a-list",
            ),
            pytest.param(
                "just a string\n",
                "not a single value ('just a string')",
                id="document-is-a-scalar",
            ),
            pytest.param(
                "apiVersion: !!python/object/apply:os.system ['true']\n",
                "unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system",
                id="python-tag",
            ),
            pytest.param(
                agent_yaml().replace("temperature: 0.2", "temperature: .nan"),
                "agents/a.yaml:14:20: .nan is not a finite number",
                id="nan",
            ),
            pytest.param(
                "kind: Agent\n",
                "agents/a.yaml:1:1: apiVersion: required field is missing "
                "(supported: shipyard.dev/v1alpha1)",
                id="no-api-version",
            ),
        ],
    )
    def test_rejected_with_a_clear_problem(
        self, write_repo: WriteRepo, content: str | bytes, expected: str
    ) -> None:
        problems = problem_for(write_repo, content)
        assert any(expected in problem for problem in problems), problems

    def test_file_over_size_limit(self, write_repo: WriteRepo) -> None:
        huge = "# padding\n" * (loading.MAX_MANIFEST_BYTES // 10 + 1)
        (problem,) = problem_for(write_repo, huge)
        assert problem.startswith("agents/a.yaml:1:1: 'agents/a.yaml' is ")
        assert "over the limit of 1048576" in problem

    def test_a_broken_file_does_not_hide_the_others(self, write_repo: WriteRepo) -> None:
        root = write_repo(
            {
                "agents/a.yaml": "{{{",
                "agents/b.yaml": agent_yaml(),
                "prompts/support-bot.md": PROMPT,
            }
        )
        result = collect(root)
        assert [agent.name for agent in result.agents] == ["support-bot"]
        assert len(result.problems) == 1

    def test_load_raises_the_projects_error_with_every_problem(self, write_repo: WriteRepo) -> None:
        root = write_repo({"agents/a.yaml": "[]", "agents/b.yaml": "x: [", "prompts/x": ""})
        with pytest.raises(ManifestInvalid) as caught:
            loading.load(FilesystemTree(root))
        assert len(caught.value.problems) == 2
        assert "(and 1 more)" in str(caught.value)

    def test_empty_documents_are_skipped(self, write_repo: WriteRepo) -> None:
        root = write_repo(
            {"agents/a.yaml": "---\n" + agent_yaml() + "---\n", "prompts/support-bot.md": "p"}
        )
        assert collect(root).ok
