"""`shipyard serve` refuses unsafe or malformed settings before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

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
