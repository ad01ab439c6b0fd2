"""`shipyard validate` refuses what a Kubernetes API server would refuse of Shipyard's objects.

Requests above their limits (a 422 on a real cluster), quantities it cannot parse, and,
with `--target kubernetes`, an agent without `spec.image` or with requests a preview
namespace's default limits would not admit: each a `file:line:col` line.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.specs import quantity
from tests.conftest import WriteRepo, agent_yaml

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"


def run(*args: str, cwd: Path) -> tuple[int, list[str]]:
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout.splitlines()


def with_resources(resources: str, *, image: bool = True, previews: bool = True) -> str:
    text = agent_yaml()
    if image:
        text = text.replace("spec:\n", "spec:\n  image: ghcr.io/acme/bot:1.0\n", 1)
    if not previews:
        text += "  preview:\n    enabled: false\n"
    return text + resources


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", Fraction(2**30)),
        ("1024Mi", Fraction(2**30)),
        ("250m", Fraction(1, 4)),
        ("0.5", Fraction(1, 2)),
        ("1e3", Fraction(1000)),
        ("2k", Fraction(2000)),
        (1, Fraction(1)),
        (0.25, Fraction(1, 4)),
    ],
    ids=str,
)
def test_quantities_parse_as_the_api_server_reads_them(text: str | float, value: Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["1 Gi", "1GB", "abc", "", "-1", "1.2.3"], ids=repr)
def test_malformed_or_negative_quantities_are_refused(text: str) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)


def test_a_request_above_its_limit_is_a_located_problem(write_repo: WriteRepo) -> None:
    root = write_repo(
        {
            "agents/a.yaml": with_resources(
                "  resources:\n"
                "    requests: {cpu: 500m, memory: 1Gi}\n"
                "    limits: {cpu: '1', memory: 512Mi}\n"
            ),
            "prompts/support-bot.md": "p",
        }
    )
    code, lines = run("validate", cwd=root)
    assert code == 1
    assert lines[0] == (
        "agents/a.yaml:19:35: spec.resources.requests.memory: request 1Gi is above the limit "
        "512Mi (spec.resources.limits.memory); the Kubernetes API server refuses a request "
        "greater than its limit"
    )
    assert len(lines) == 2, lines  # cpu 500m ≤ 1 is fine


def test_equal_request_and_limit_in_different_units_is_valid(write_repo: WriteRepo) -> None:
    root = write_repo(
        {
            "agents/a.yaml": with_resources(
                "  resources:\n    requests: {memory: 1024Mi}\n    limits: {memory: 1Gi}\n"
            ),
            "prompts/support-bot.md": "p",
        }
    )
    assert run("validate", "--target", "kubernetes", cwd=root)[0] == 0


def test_target_kubernetes_requires_an_image(write_repo: WriteRepo) -> None:
    root = write_repo({"agents/a.yaml": agent_yaml(), "prompts/support-bot.md": "p"})
    assert run("validate", cwd=root)[0] == 0  # the local target runs spec.run
    code, lines = run("validate", "--target", "kubernetes", cwd=root)
    assert code == 1
    assert lines[0] == (
        "agents/a.yaml:7:1: spec.image: spec.image is required on the kubernetes target, "
        "which runs agents from container images"
    )


def test_target_kubernetes_checks_requests_against_the_preview_default_limits(
    write_repo: WriteRepo,
) -> None:
    big = "  resources:\n    requests: {memory: 1Gi}\n"
    root = write_repo({"agents/a.yaml": with_resources(big), "prompts/support-bot.md": "p"})
    code, lines = run("validate", "--target", "kubernetes", cwd=root)
    assert code == 1
    assert lines[0].startswith(
        "agents/a.yaml:19:24: spec.resources.requests.memory: request 1Gi is above 512Mi, the "
        "default limit a preview namespace gives a container without "
        "spec.resources.limits.memory"
    ), lines
    # Without previews, or with a limit of its own, the agent fits.
    no_previews = with_resources(big, previews=False)
    root = write_repo({"agents/a.yaml": no_previews, "prompts/support-bot.md": "p"})
    assert run("validate", "--target", "kubernetes", cwd=root)[0] == 0


def test_the_example_repository_is_valid_for_kubernetes() -> None:
    assert run("validate", "--target", "kubernetes", str(EXAMPLE_REPO), cwd=EXAMPLE_REPO)[0] == 0


def test_an_unknown_target_is_a_usage_error(tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(cli, ["validate", "--target", "mars"])
    assert result.exit_code == 2
    assert "'mars' is not one of 'local', 'kubernetes'" in result.stderr
