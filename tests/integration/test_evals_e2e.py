"""Golden cases run against a preview and production and land on the pull request.

Real git, `shipyard serve` as a process, the example agent behind the router, the fake
GitHub server: a prompt change that breaks one case fails `shipyard/evals` and the
comment names the case; the next push that fixes it turns the status green.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.github import DEFAULT_TOKEN, FakeGitHub, fake_github
from tests.fakes.gitlab import DEFAULT_TOKEN as GITLAB_TOKEN
from tests.fakes.gitlab import fake_gitlab
from tests.gitrepos import Upstream
from tests.integration.controller_harness import (
    EXAMPLE_AGENT,
    Shipyard,
    preview_of,
    wait_for,
)

REPOSITORY = "acme/agents"
BRANCH = "feature/tone"

SUITE = """\
apiVersion: shipyard.dev/v1alpha1
kind: EvalSuite
metadata:
  name: alpha-golden
spec:
  agent: alpha
  cases:
    - name: healthy
      request: {method: GET, path: /healthz}
      expect: {status: 200, jsonPath: [{path: $.status, equals: ok}]}
    - name: echoes
      request: {path: /chat, json: {message: where is my order}}
      expect:
        contains: ["where is my order"]
        jsonPath: [{path: $.words, equals: 4}]
        maxLatencyMs: 20000
    - name: polite-prompt
      request: {method: GET, path: /}
      expect: {contains: ["You are polite."]}
"""


def agent_manifest(prompt: str, temperature: float = 0.2) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: alpha
spec:
  run:
    command: ["python3", "agent/server.py"]
  model:
    provider: fake
    name: echo
    parameters:
      temperature: {temperature}
  prompt:
    system: {prompt}
"""


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with fake_github() as server:
        yield server


def seed(upstream: Upstream) -> None:
    upstream.commit(
        {
            "agent/server.py": (EXAMPLE_AGENT / "server.py").read_text(),
            "agents/alpha.yaml": agent_manifest("You are polite."),
            "evals/alpha.yaml": SUITE,
        },
        branch="main",
    )
    upstream.push("main")


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path, github: FakeGitHub) -> Iterator[Shipyard]:
    seed(upstream)
    token_file = tmp_path / "github-token"
    token_file.write_text(DEFAULT_TOKEN + "\n")
    running = Shipyard(
        upstream.bare, tmp_path / "state",
        "--github-api-url", github.url, "--github-token-file", str(token_file),
        "--github-repo", REPOSITORY,
    ).start()  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def test_a_broken_case_fails_the_eval_status_and_a_fix_turns_it_green(
    shipyard: Shipyard, upstream: Upstream, github: FakeGitHub
) -> None:
    # Production is evaluated on its own as soon as it is ready.
    wait_for(
        lambda: _shipyard_eval(shipyard, "production").returncode == 0,
        what="production's eval results",
    )
    github.state.add_pull(REPOSITORY, 7, BRANCH)
    environment = preview_of(BRANCH)
    broken = upstream.commit({"agents/alpha.yaml": agent_manifest("You are curt.")}, branch=BRANCH)
    upstream.push(BRANCH)

    status = wait_for(lambda: _eval_status(github, broken), timeout=60, what="shipyard/evals")
    assert status["state"] == "failure"
    assert "alpha/polite-prompt" in status["description"]
    # The status goes out before the comment is edited: wait for the comment too.
    comment = wait_for(
        lambda: next(
            (
                c["body"]
                for c in github.state.pull_comments(REPOSITORY, 7)
                if "**Evals**" in c["body"]
            ),
            None,
        ),
        what="the Evals section in the comment",
    )
    row = next(line for line in comment.splitlines() if "polite-prompt" in line)
    assert "❌ fail" in row.split("|")[3]  # preview
    assert "✅ pass" in row.split("|")[4]  # production
    assert "does not contain 'You are polite.'" in row
    echoes = next(line for line in comment.splitlines() if "echoes" in line)
    assert echoes.count("✅ pass") == 2

    listed = _shipyard_eval(shipyard, environment)
    assert listed.returncode == 1, listed.stderr
    assert "alpha-golden/polite-prompt" in listed.stdout
    assert "FAIL" in listed.stdout
    assert _shipyard_eval(shipyard, "production").returncode == 0
    metrics = shipyard.metrics()
    assert f'agent="alpha",environment="{environment}"' in metrics
    assert re.search(r'shipyard_eval_cases\{[^}]*result="fail"[^}]*\} 1\.0', metrics)

    fixed = upstream.commit(
        {"agents/alpha.yaml": agent_manifest("You are polite.", temperature=0.3)}, branch=BRANCH
    )
    upstream.push(BRANCH)
    status = wait_for(lambda: _eval_status(github, fixed), timeout=60, what="the fixed status")
    assert status["state"] == "success"
    assert status["description"] == "3 of 3 cases pass"
    wait_for(
        lambda: (
            fixed[:7] in github.state.pull_comments(REPOSITORY, 7)[0]["body"]
            and "❌" not in github.state.pull_comments(REPOSITORY, 7)[0]["body"]
        ),
        what="the comment to show every case passing",
    )
    assert len(github.state.pull_comments(REPOSITORY, 7)) == 1
    assert _shipyard_eval(shipyard, environment).returncode == 0


def test_a_hostile_suite_is_refused_and_the_controller_carries_on(
    shipyard: Shipyard, upstream: Upstream, github: FakeGitHub
) -> None:
    github.state.add_pull(REPOSITORY, 8, BRANCH)
    hostile = SUITE.replace('contains: ["You are polite."]', 'regex: "(a+)+$"')
    first = upstream.commit(
        {"agents/alpha.yaml": agent_manifest("You are curt."), "evals/alpha.yaml": hostile},
        branch=BRANCH,
    )
    upstream.push(BRANCH)
    status = wait_for(lambda: _eval_status(github, first), timeout=60, what="shipyard/evals")
    assert status["state"] == "failure"
    assert status["description"].startswith("invalid eval suite: evals/alpha.yaml:")
    wait_for(
        lambda: "**Eval suite problems**" in github.state.pull_comments(REPOSITORY, 8)[0]["body"],
        what="the suite's problem in the comment",
    )
    comment = github.state.pull_comments(REPOSITORY, 8)[0]["body"]
    assert "expect.regex: nested quantifiers" in comment
    assert "✅ Shipyard preview" in comment  # the preview itself is ready all the same
    second = upstream.commit(
        {"agents/alpha.yaml": agent_manifest("You are polite.", 0.3), "evals/alpha.yaml": SUITE},
        branch=BRANCH,
    )
    upstream.push(BRANCH)
    status = wait_for(lambda: _eval_status(github, second), timeout=60, what="shipyard/evals")
    assert status["state"] == "success"


def _eval_status(github: FakeGitHub, sha: str) -> dict[str, str] | None:
    found = [
        status
        for status in github.state.commit_statuses(REPOSITORY, sha)
        if status["context"] == "shipyard/evals"
    ]
    return found[-1] if found else None


def _shipyard_eval(shipyard: Shipyard, environment: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "shipyard"
    return subprocess.run(
        [str(executable), "eval", "alpha", "-e", environment,
         "--server", f"http://127.0.0.1:{shipyard.port}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_gitlab_merge_request_gets_the_eval_status_and_section(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream)
    project = "group/agents"
    with fake_gitlab() as gitlab:
        gitlab.state.add_merge_request(project, 4, BRANCH)
        token_file = tmp_path / "gitlab-token"
        token_file.write_text(GITLAB_TOKEN + "\n")
        running = Shipyard(
            upstream.bare, tmp_path / "state",
            "--gitlab-api-url", gitlab.url, "--gitlab-token-file", str(token_file),
            "--gitlab-project", project,
        ).start()  # fmt: skip
        try:
            sha = upstream.commit(
                {"agents/alpha.yaml": agent_manifest("You are curt.")}, branch=BRANCH
            )
            upstream.push(BRANCH)

            def eval_status() -> dict[str, str] | None:
                found = [
                    s
                    for s in gitlab.state.commit_statuses(project, sha)
                    if s["name"] == "shipyard/evals"
                ]
                return found[-1] if found else None

            status = wait_for(eval_status, timeout=60, what="shipyard/evals on GitLab")
            assert status["status"] == "failed"
            assert "alpha/polite-prompt" in status["description"]
            wait_for(
                lambda: "polite-prompt" in gitlab.state.mr_notes(project, 4)[-1]["body"],
                what="the Evals section in the note",
            )
        finally:
            running.close()
