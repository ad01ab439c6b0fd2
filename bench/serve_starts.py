"""Start `shipyard serve` with a production and a preview again and again, on each loop.

Why this exists: uvloop was once left out because `serve` on it died with SIGABRT inside
the event loop about one start in seven with a preview (docs/performance.md, "Router on
uvloop"). A crash that rare is not a test's business; this counts it, side by side:

    python bench/serve_starts.py [--starts 20] [--loops uvloop asyncio]

Each start: a fresh state directory, a repository with `main` and one preview branch
(three agents each, the example agent), `shipyard serve --event-loop LOOP`, wait until
every agent of both environments answers through the router, push a change to the
preview branch and wait for its new version, then SIGTERM. Printed per loop: starts,
clean exits, deaths by signal (SIGABRT counted apart), and failures to get ready.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import tempfile
import time
from pathlib import Path

# The git helpers live with the tests; the repository root makes them importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, seed, wait_for

AGENTS = ("alpha", "beta", "gamma")
PREVIEW_BRANCH = "feature-x"


def one_start(root: Path, loop: str) -> str:
    """How one start ended: "clean", "SIGABRT", "signal N", "exit N" or "not ready: …"."""
    upstream = Upstream(root / "upstream")
    seed(upstream, *AGENTS)
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.5)}, branch="feature-x")
    upstream.push(PREVIEW_BRANCH)
    preview = "preview-feature-x"
    shipyard = Shipyard(upstream.bare, root / "state", "--event-loop", loop)
    outcome = "clean"
    try:
        shipyard.start()
        for environment in ("production", preview):
            for agent in AGENTS:
                shipyard.wait_version(agent, environment, _version(shipyard, agent, environment))
        commit = upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=0.7)}, branch=PREVIEW_BRANCH
        )
        upstream.push(PREVIEW_BRANCH)
        version = shipyard.wait_desired("alpha", preview, commit)
        shipyard.wait_version("alpha", preview, version)
    except AssertionError as error:
        outcome = f"not ready: {str(error).splitlines()[0][:120]}"
    finally:
        process = shipyard.process
        if process is not None and process.poll() is None:
            shipyard.stop()
            returncode = process.returncode
        else:
            returncode = process.returncode if process is not None else 0
        shipyard.close()
    if returncode != 0 or outcome != "clean":
        tail = shipyard.log.read_text(errors="replace").splitlines()[-12:]
        print("\n".join(f"    | {line}" for line in tail), flush=True)
    if returncode == -signal.SIGABRT:
        return "SIGABRT"
    if returncode < 0:
        return f"signal {-returncode}"
    if returncode != 0:
        return f"exit {returncode}"
    return outcome


def _version(shipyard: Shipyard, agent: str, environment: str) -> str:
    def desired() -> str | None:
        return shipyard.version_of(agent, environment)

    return wait_for(desired, what=f"{agent} in {environment} to be wanted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20, help="starts per loop")
    parser.add_argument("--loops", nargs="+", default=["uvloop", "asyncio"])
    options = parser.parse_args()
    outcomes: dict[str, collections.Counter[str]] = {
        loop: collections.Counter() for loop in options.loops
    }
    began = time.monotonic()
    for index in range(options.starts):
        for loop in options.loops if index % 2 == 0 else options.loops[::-1]:
            with tempfile.TemporaryDirectory(prefix="shipyard-starts-") as scratch:
                outcome = one_start(Path(scratch), loop)
            outcomes[loop][outcome.split(":")[0]] += 1
            print(f"start {index + 1:>3} on {loop:<8} {outcome}", flush=True)
    print(f"\n{options.starts} starts per loop in {time.monotonic() - began:.0f} s")
    for loop, counted in outcomes.items():
        summary = ", ".join(f"{outcome}: {count}" for outcome, count in counted.most_common())
        print(f"{loop:<8} {summary}")


if __name__ == "__main__":
    main()
