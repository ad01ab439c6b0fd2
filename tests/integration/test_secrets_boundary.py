"""The untrusted-branch boundary on the local target, tried as an attacker would.

A real `shipyard serve` with the controller's own credentials (webhook secret, API
tokens), a scoped secrets file and a secret-looking variable in its environment. Agents
run a tiny server that answers with its whole environment, so the tests assert on what
each agent process actually received, not on what the controller meant to give it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, dump, preview_of, wait_for
from tests.integration.webhook_payloads import github_pull_request, signed_github

WEBHOOK_SECRET = "whsec-9d41c0ffee"
WRITE_TOKEN = "write-tok-51a7b3"
PRODUCTION_KEY = "sk-live-prod-8e2f"
PREVIEW_KEY = "sk-test-prev-4c1d"
SHARED_DSN = "dsn-shared-77aa"
FROM_ENVIRONMENT = "env-only-3b9e"
SECRETS_FILE = f"""\
OPENAI_API_KEY={PRODUCTION_KEY}
[previews]
PREVIEW_TOKEN={PREVIEW_KEY}
[all]
SENTRY_DSN={SHARED_DSN}
COPIED_HOOK={WEBHOOK_SECRET}
"""
ENV_ECHO = """\
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(dict(os.environ)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
EVERY_SECRET = (WEBHOOK_SECRET, WRITE_TOKEN, PRODUCTION_KEY, PREVIEW_KEY, SHARED_DSN)


def agent(name: str, *references: tuple[str, str, str], prompt: str = "") -> str:
    secrets = "".join(
        f"    - env: {env}\n      secretRef: {{name: {secret}, key: {key}}}\n"
        for env, secret, key in references
    )
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  run:
    command: ["python3", "envecho.py"]
  model: {{provider: fake, name: echo}}
  prompt: {{system: You are {name}.{prompt}}}
  rollout: {{progressDeadlineSeconds: 20}}
  secrets:
{secrets}"""


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text(SECRETS_FILE, encoding="utf-8")
    return path


@pytest.fixture
def controller(
    upstream: Upstream, tmp_path: Path, secrets_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Shipyard]:
    # A secret-looking variable in the controller's environment: no longer a source.
    monkeypatch.setenv("LEAKY_SECRET", FROM_ENVIRONMENT)
    webhook_file = tmp_path / "webhook-secret"
    webhook_file.write_text(WEBHOOK_SECRET + "\n", encoding="utf-8")
    upstream.commit(
        {
            "envecho.py": ENV_ECHO,
            "agents/bot.yaml": agent(
                "bot", ("OPENAI_API_KEY", "openai", "api-key"), ("SENTRY_DSN", "sentry", "dsn")
            ),
        },
        branch="main",
    )
    upstream.push("main")
    shipyard = Shipyard(
        upstream.bare,
        tmp_path / "state",
        "--secrets-file", str(secrets_file),
        "--webhook-secret-file", str(webhook_file),
        "--write-token", WRITE_TOKEN,
        "--github-repo", "acme/agents",
        token=WRITE_TOKEN,
    )  # fmt: skip
    try:
        yield shipyard.start()
    finally:
        shipyard.close()


def environment_of(shipyard: Shipyard, agent_name: str, environment: str) -> dict[str, str]:
    def check() -> dict[str, str] | None:
        response = shipyard.agent(agent_name, environment)
        return response.json() if response.status_code == 200 else None

    return wait_for(check, what=f"{agent_name} in {environment} to serve")


def agent_message(shipyard: Shipyard, agent_name: str, environment: str) -> str:
    def check() -> str | None:
        env = shipyard.environments().get(environment)
        for item in (env or {}).get("agents", []):
            if item["name"] == agent_name and item["message"]:
                return str(item["message"])
        return None

    return wait_for(check, what=f"a message for {agent_name} in {environment}")


def test_production_receives_its_secrets_and_nothing_of_the_controller(
    controller: Shipyard,
) -> None:
    seen = environment_of(controller, "bot", "production")
    assert seen["OPENAI_API_KEY"] == PRODUCTION_KEY
    assert seen["SENTRY_DSN"] == SHARED_DSN
    leaked = [value for value in (WEBHOOK_SECRET, WRITE_TOKEN, PREVIEW_KEY, FROM_ENVIRONMENT)
              if value in json.dumps(seen)]  # fmt: skip
    assert leaked == []


ATTACKS = {
    # agent name: (the reference it asks for, what the refusal must say)
    "hook": (("STOLEN", "shipyard", "webhook-secret"), "controller's credentials"),
    "tokens": (("STOLEN", "shipyard", "write-tokens"), "controller's credentials"),
    "copied": (("STOLEN", "copied", "hook"), "controller's own credentials"),
    "prodkey": (("STOLEN", "openai", "api-key"), "add OPENAI_API_KEY=… under a [previews]"),
    "fromenv": (("STOLEN", "leaky", "secret"), "is not set"),
}


def test_a_branch_cannot_reach_production_or_controller_secrets(
    controller: Shipyard, upstream: Upstream
) -> None:
    files: dict[str, str | None] = {
        f"agents/{name}.yaml": agent(name, reference) for name, (reference, _) in ATTACKS.items()
    }
    files["agents/fair.yaml"] = agent(
        "fair", ("PREVIEW_TOKEN", "preview", "token"), ("SENTRY_DSN", "sentry", "dsn")
    )
    upstream.commit(files, branch="attack")
    upstream.push("attack")
    preview = preview_of("attack")

    fair = environment_of(controller, "fair", preview)
    assert fair["PREVIEW_TOKEN"] == PREVIEW_KEY  # scoped to previews: it arrives
    assert fair["SENTRY_DSN"] == SHARED_DSN
    assert [value for value in EVERY_SECRET if value in json.dumps(fair)] == [
        PREVIEW_KEY,
        SHARED_DSN,
    ]
    for name, (_, refusal) in ATTACKS.items():
        message = agent_message(controller, name, preview)
        assert refusal in message, dump(controller)
        assert not any(value in message for value in EVERY_SECRET)
        assert controller.agent(name, preview).status_code == 404  # never started
    events = controller.http.get(controller.api("/api/v1/events")).text
    assert "NotLaunchable" in events
    for shown in (events, json.dumps(controller.environments()), controller.log.read_text()):
        assert not any(value in shown for value in EVERY_SECRET)
    # Production kept serving throughout, with its own values.
    assert environment_of(controller, "bot", "production")["OPENAI_API_KEY"] == PRODUCTION_KEY


def test_a_fork_preview_stays_without_secrets_across_a_restart(
    controller: Shipyard, upstream: Upstream
) -> None:
    sha = upstream.commit(
        {"agents/fork.yaml": agent("fork", ("PREVIEW_TOKEN", "preview", "token"))},
        branch="contrib",
    )
    body, headers = signed_github(
        WEBHOOK_SECRET, "pull_request", github_pull_request("contrib", 12, sha, fork=True)
    )
    noted = controller.http.post(controller.api("/hooks/github"), content=body, headers=headers)
    assert noted.status_code == 200, noted.text
    upstream.push("contrib")
    preview = preview_of("contrib")
    assert "withheld from pull requests from forks" in agent_message(controller, "fork", preview)

    controller.stop()
    controller.start()
    # A new commit, so the restarted controller tries the agent again from scratch.
    again = agent("fork", ("PREVIEW_TOKEN", "preview", "token"), prompt=" Again.")
    upstream.commit({"agents/fork.yaml": again}, branch="contrib")
    upstream.push("contrib")
    controller.http.post(controller.api("/api/v1/sync"))
    message = wait_for(
        lambda: _message_at_latest(controller, preview, upstream.git("rev-parse", "contrib")),
        what="the restarted controller to refuse the fork's agent",
    )
    assert "withheld from pull requests from forks" in message
    assert controller.agent("fork", preview).status_code == 404

    # A maintainer's label lets the next commit's preview have its preview-scoped secret.
    labeled = github_pull_request("contrib", 12, sha, fork=True, labels=("shipyard:trusted",))
    body, headers = signed_github(WEBHOOK_SECRET, "pull_request", labeled)
    controller.http.post(controller.api("/hooks/github"), content=body, headers=headers)
    trusted = agent("fork", ("PREVIEW_TOKEN", "preview", "token"), prompt=" Trusted.")
    upstream.commit({"agents/fork.yaml": trusted}, branch="contrib")
    upstream.push("contrib")
    controller.http.post(controller.api("/api/v1/sync"))
    assert environment_of(controller, "fork", preview)["PREVIEW_TOKEN"] == PREVIEW_KEY


def _message_at_latest(shipyard: Shipyard, environment: str, sha: str) -> str | None:
    env: dict[str, Any] | None = shipyard.environments().get(environment)
    if env is None or env["commit"] != sha:
        return None
    for item in env["agents"]:
        if item["name"] == "fork" and "withheld" in item["message"]:
            return str(item["message"])
    return None
