"""Reading the Quickstart's commands out of the README: exactly two one-line commands and
one Debian prerequisite line, or a clear error (the tests that run them rely on it)."""

from __future__ import annotations

import re

import pytest

from tests.readme_commands import kubernetes_install, quickstart_commands

PREREQUISITES = "Install `sudo apt-get install -y python3-venv git` first.\n\n"


def readme(*blocks: str, prose: str = PREREQUISITES) -> str:
    fenced = "".join(f"```sh\n{block}\n```\n\n" for block in blocks)
    return f"# Title\n\n## Quickstart\n\n{prose}{fenced}## Next\n\n```sh\nnot this\n```\n"


def test_the_readme_itself_has_its_two_commands() -> None:
    commands = quickstart_commands()
    assert commands.run.endswith("shipyard up")
    assert commands.test == "bash .ci/test"
    assert "python3-venv" in commands.debian_prerequisites


def test_commands_are_read_in_order_from_the_quickstart_only() -> None:
    commands = quickstart_commands(readme("make run", "make test"))
    assert commands == ("make run", "make test", "sudo apt-get install -y python3-venv git")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("# Title\n", "no '## Quickstart' section", id="no-section"),
        pytest.param(readme("one"), "has 1 sh blocks, expected 2", id="one-block"),
        pytest.param(readme("a", "b", "c"), "has 3 sh blocks", id="three-blocks"),
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
