"""Benchmark how long `shipyard --help` takes, against importing every command first.

Why this exists: people and scripts run `shipyard` often (`get`, `--help`, completions
in the future), and a CLI that takes most of a second to print its help feels broken.
The goal (issue: performance at scale) is under 0.2 s. Before, `--help` imported every
command to list it, `serve`'s FastAPI and uvicorn included; now it lists them from a
table. Both are run here, alternating, as fresh processes:

    python bench/cli_startup.py [--runs 10] [--json]

"now" runs the installed `shipyard --help`; "importing every command" runs the same
help after importing each command's module, which is what `--help` paid before.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHIPYARD = Path(sys.executable).parent / "shipyard"
IMPORT_ALL_THEN_HELP = (
    "import importlib, sys\n"
    "from controller.cli.main import COMMANDS, main\n"
    "for target, _ in COMMANDS.values():\n"
    "    importlib.import_module(target.split(':')[0])\n"
    "sys.argv = ['shipyard', '--help']\n"
    "main()\n"
)


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    now: list[float] = []
    everything: list[float] = []
    for _ in range(options.runs):
        now.append(_seconds([str(SHIPYARD), "--help"]))
        everything.append(_seconds([sys.executable, "-c", IMPORT_ALL_THEN_HELP]))
    result = {"help_s": statistics.median(now), "import_all_s": statistics.median(everything)}
    if options.json:
        print(json.dumps(result, indent=2))
        return
    print(f"shipyard --help:                     {result['help_s']:.3f} s (goal < 0.2 s)")
    print(f"importing every command, then help: {result['import_all_s']:.3f} s")
    print(f"ratio: {result['import_all_s'] / result['help_s']:.1f}x (medians of {options.runs})")


if __name__ == "__main__":
    main()
