"""The README Quickstart's two commands, read out of README.md itself.

What is tested (tests/integration/test_readme_commands.py, and the fresh Debian and Ubuntu
containers of .github/workflows/readme.yml) is therefore exactly what a new user copies:
the README cannot drift from it. Standard library only, so that a bare system Python can
run it: `python3 tests/readme_commands.py run` prints the run command, `… test` the test
command, `… debian-prerequisites` what the Quickstart tells a stock Debian or Ubuntu to
install first, `… kubernetes-install` the "On Kubernetes" install (the kind e2e job runs
it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple

README = Path(__file__).resolve().parents[1] / "README.md"


class QuickstartCommands(NamedTuple):
    run: str
    test: str
    debian_prerequisites: str


def _section(text: str | None, heading: str) -> str:
    text = README.read_text(encoding="utf-8") if text is None else text
    _, found, rest = text.partition(f"\n## {heading}\n")
    if not found:
        raise ValueError(f"README.md has no '## {heading}' section")
    return rest.split("\n## ", 1)[0]


def _sh_blocks(section: str) -> list[str]:
    return [block.strip() for block in re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)]


RUN_MARKER = "**Run Shipyard**"
TEST_MARKER = "**Run the whole test suite**"


def _first_block_after(section: str, marker: str) -> str:
    _, found, rest = section.partition(marker)
    blocks = _sh_blocks(rest) if found else []
    if not blocks:
        raise ValueError(f"the Quickstart has no sh block after {marker}")
    block = blocks[0]
    if "\n" in block:
        raise ValueError(f"a Quickstart command must be one line to copy: {block!r}")
    return block


def quickstart_commands(text: str | None = None) -> QuickstartCommands:
    """The first `sh` block after "Run Shipyard" and after "Run the whole test suite" in
    the Quickstart section; each must be one line."""
    section = _section(text, "Quickstart")
    run = _first_block_after(section, RUN_MARKER)
    test = _first_block_after(section, TEST_MARKER)
    prerequisites = re.findall(r"`(sudo apt-get install [^`]+)`", section)
    if len(prerequisites) != 1:
        raise ValueError("the Quickstart names no single `sudo apt-get install …` for Debian")
    return QuickstartCommands(run, test, prerequisites[0])


def kubernetes_install(text: str | None = None) -> str:
    """The first `sh` block of "On Kubernetes": the install, as a shell script."""
    blocks = _sh_blocks(_section(text, "On Kubernetes"))
    if not blocks:
        raise ValueError("the 'On Kubernetes' section has no sh block")
    return blocks[0]


if __name__ == "__main__":
    which = sys.argv[1].replace("-", "_") if len(sys.argv) == 2 else ""
    if which == "kubernetes_install":
        print(kubernetes_install())
    elif which in QuickstartCommands._fields:
        print(getattr(quickstart_commands(), which))
    else:
        sys.exit(
            "usage: python3 tests/readme_commands.py "
            "run|test|debian-prerequisites|kubernetes-install"
        )
