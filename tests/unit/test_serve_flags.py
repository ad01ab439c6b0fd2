"""`shipyard serve` refuses unsafe or malformed settings before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import serve_command
from controller.cli.main import cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--host", "0.0.0.0"],
            "--host 0.0.0.0 is not a loopback address and no API tokens are set",
            id="open-bind-without-tokens",
        ),
        pytest.param(["--poll-interval", "soon"], "'soon' is not a duration", id="duration"),
        pytest.param(["--poll-interval", "0s"], "must be longer than zero", id="zero-poll"),
        pytest.param(
            ["--url-template", "http://{agent}.{nope}/"], "--url-template", id="placeholder"
        ),
        pytest.param(["--port", "70000"], "70000 is not in the range", id="port"),
        pytest.param(["--target", "mars"], "'mars' is not one of", id="target"),
        pytest.param(
            ["--restart-backoff", "10m", "--restart-backoff-cap", "5m"],
            "600s is longer than --restart-backoff-cap (300s)",
            id="restart-backoff-over-cap",
        ),
        pytest.param(["--prune-interval", "0s"], "must be longer than zero", id="zero-prune"),
        pytest.param(["--event-loop", "libev"], "'libev' is not one of", id="event-loop"),
        pytest.param(["--agent-timeout", "0s"], "must be longer than zero", id="zero-agent"),
        pytest.param(["--agent-timeout", "forever"], "'forever' is not a duration", id="agent"),
        pytest.param(
            ["--prometheus-url", "ftp://prom:9090"],
            "'ftp://prom:9090' is not an http:// or https:// URL",
            id="prometheus-url-scheme",
        ),
        pytest.param(
            ["--gitea-token", "t"],
            "--gitea-token needs --gitea-api-url",
            id="gitea-token-without-api-url",
        ),
        pytest.param(
            ["--github-token", "a", "--gitea-token", "b", "--gitea-api-url", "http://h/api/v1"],
            "give one forge token (GitHub, GitLab or Gitea), not several",
            id="two-forge-tokens",
        ),
    ],
)
def test_bad_settings_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s"), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "s").exists(), "nothing may be created for a refused start"


def test_github_token_and_token_file_exclude_each_other(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t\n")
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--repo",
            str(tmp_path),
            "--github-token",
            "x",
            "--github-token-file",
            str(token),
        ],
    )
    assert result.exit_code == 2
    assert "not both" in result.stderr


@pytest.mark.parametrize(
    ("content", "with_repo", "message"),
    [
        ("https://u:tok-9f3a@host/x.git\n", True, "give --repo or --repo-file, not both"),
        ("  \n", False, "is empty"),
        ("https://host/x.git\nhttps://other/y.git\n", False, "holds more than one line"),
    ],
    ids=["both", "empty", "two-lines"],
)
def test_a_repository_file_that_cannot_be_used_is_a_usage_error(
    content: str, with_repo: bool, message: str, tmp_path: Path
) -> None:
    url_file = tmp_path / "repo-url"
    url_file.write_text(content)
    repo = ["--repo", str(tmp_path)] if with_repo else []
    result = CliRunner().invoke(
        cli,
        ["serve", *repo, "--repo-file", str(url_file), "--state-dir", str(tmp_path / "s")],
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "tok-9f3a" not in result.output
    assert not (tmp_path / "s").exists()


def test_serve_without_a_repository_says_how_to_give_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--state-dir", str(tmp_path / "s")], env={"SHIPYARD_REPO": None}
    )
    assert result.exit_code == 2, result.output
    assert "give the agents repository with --repo or --repo-file" in result.stderr


def test_a_secrets_file_that_does_not_parse_stops_serve_without_echoing_it(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("OPENAI_API_KEY=sk-live-1\n[staging]\nsk-live-orphan-value\n")
    result = CliRunner().invoke(
        cli,
        ["serve", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s"),
         "--secrets-file", str(secrets)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "unknown section [staging]" in result.stderr
    assert "sk-live" not in result.stderr
    assert not (tmp_path / "s").exists()


def test_credentials_come_from_files_and_are_known_as_the_controllers_own(
    tmp_path: Path,
) -> None:
    webhook = tmp_path / "webhook"
    webhook.write_text("whsec-from-file\n")
    writers = tmp_path / "writers"
    writers.write_text("write-a\n\nwrite-b\n")
    options = serve_command.gather(
        **{
            **_defaults(),
            "webhook_secret_file": webhook,
            "write_tokens": ("write-flag",),
            "write_tokens_file": writers,
        }
    )
    assert options.webhook_secret == "whsec-from-file"
    assert options.write_tokens == ("write-flag", "write-a", "write-b")
    config = serve_command.build_config("https://deploy:tok-9a@git.example/x.git", options)
    assert config.credentials == {
        "whsec-from-file", "write-flag", "write-a", "write-b", "tok-9a",
    }  # fmt: skip
    assert "tok-9a" not in repr(config)
    assert not {"whsec-from-file", "write-a"} & set(repr(options).split("'"))


def test_a_gitea_token_from_a_file_feeds_gitea_feedback_and_is_the_controllers_own(
    tmp_path: Path,
) -> None:
    token = tmp_path / "gitea-token"
    token.write_text("gitea-tok-42\n")
    options = serve_command.gather(
        **{
            **_defaults(),
            "gitea_token_file": token,
            "gitea_api_url": "https://git.example/api/v1",
            "gitea_repo": "acme/agents",
        }
    )
    config = serve_command.build_config("https://git.example/acme/agents.git", options)
    assert config.forge_repository == "acme/agents"
    assert "gitea-tok-42" in config.credentials
    assert "gitea-tok-42" not in repr(options)
    notifier = options.api.notifier()
    assert type(notifier).__name__ == "GiteaNotifier"
    assert "https://git.example/api/v1" in repr(notifier)


def _defaults() -> dict[str, object]:
    """What click passes when no flag is given (run through the real command's parser)."""
    captured: dict[str, object] = {}
    command = cli.get_command(None, "serve")  # type: ignore[arg-type]
    assert command is not None
    context = command.make_context("serve", ["--repo", "x"])
    captured.update(context.params)
    serve_only = (
        "repo", "target", "kubeconfig", "kube_context", "ingress_class", "tls_secret",
        "production_namespace", "leader_election", "leader_election_namespace",
    )  # fmt: skip
    for name in serve_only:
        captured.pop(name, None)
    return captured
