"""Reading the Quickstart's commands out of the README: the one-line command after "Run
Shipyard" and after "Run the whole test suite", and one Debian prerequisite line, or a clear
error (the tests that run them rely on it)."""

from __future__ import annotations

import re

import pytest

from tests.readme_commands import kubernetes_install, quickstart_commands

PREREQUISITES = "Install `sudo apt-get install -y python3-venv git` first.\n\n"


def readme(run: str, test: str, *, prose: str = PREREQUISITES, between: str = "") -> str:
    fenced = f"**Run Shipyard**:\n\n```sh\n{run}\n```\n\n{between}"
    fenced += f"**Run the whole test suite**:\n\n```sh\n{test}\n```\n\n"
    return f"# Title\n\n## Quickstart\n\n{prose}{fenced}## Next\n\n```sh\nnot this\n```\n"


def test_the_readme_itself_has_its_two_commands() -> None:
    commands = quickstart_commands()
    assert commands.run.endswith("shipyard up")
    assert commands.test == "bash .ci/test"
    assert "python3-venv" in commands.debian_prerequisites


def test_commands_are_read_after_their_markers_from_the_quickstart_only() -> None:
    walkthrough = "Then:\n\n```sh\ncd repo\ngit push\n```\n\n"
    commands = quickstart_commands(readme("make run", "make test", between=walkthrough))
    assert commands == ("make run", "make test", "sudo apt-get install -y python3-venv git")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("# Title\n", "no '## Quickstart' section", id="no-section"),
        pytest.param(
            "# Title\n\n## Quickstart\n\n" + PREREQUISITES + "```sh\nmake\n```\n",
            "no sh block after **Run Shipyard**",
            id="no-run-marker",
        ),
        pytest.param(
            readme("a", "b").replace("**Run the whole test suite**", "Tests"),
            "no sh block after **Run the whole test suite**",
            id="no-test-marker",
        ),
        pytest.param(readme("a &&\\\n b", "c"), "must be one line", id="two-lines"),
        pytest.param(readme("a", "b", prose=""), "no single `sudo apt-get", id="no-apt-line"),
    ],
)
def test_a_quickstart_that_changed_shape_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        quickstart_commands(text)


def test_the_kubernetes_install_is_the_first_block_of_its_section() -> None:
    text = readme("a", "b") + "## On Kubernetes\n\n```sh\nkubectl apply -k x/\n```\n"
    assert kubernetes_install(text) == "kubectl apply -k x/"
    assert kubernetes_install().startswith("kubectl apply -k manifests/")
