"""What each dashboard page costs to render at 10 and at 1,000 agents, side by side.

Why this exists: issue #17 asks that no page wait on more than one API round trip per
1,000 agents. Pages read the controller's memory and a fixed number of store queries;
this prints, per page, the SQL statements the store ran, the calls made to the
Kubernetes API server (the project's fake, on loopback) and the render time, at both
sizes, and the ratio of the two times:

    python bench/dashboard_pages.py [--small 10] [--large 1000]

The first sync of the large repository takes about a minute on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The fake API server and the measuring code live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fake_apiserver.server import FakeApiServer
from tests.integration.dashboard_costs import page_costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    root = Path(tempfile.mkdtemp(prefix="shipyard-dashboard-bench-"))
    fake = FakeApiServer(ready_delay=0.0).start()
    try:
        small = page_costs(args.small, root / "small", fake)
        large = page_costs(args.large, root / "large", fake)
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'page':<48} {'agents':>6} {'sql':>4} {'api':>4} {'ms':>8}")
    for path in small:
        for agents, cost in ((args.small, small[path]), (args.large, large[path])):
            print(
                f"{path:<48} {agents:>6} {cost.statements:>4} {cost.api_calls:>4} "
                f"{cost.seconds * 1000:>8.1f}"
            )
        ratio = large[path].seconds / small[path].seconds if small[path].seconds else 0.0
        same = (large[path].statements, large[path].api_calls) == (
            small[path].statements,
            small[path].api_calls,
        )
        print(f"  time {args.large}/{args.small} agents: {ratio:.1f}x; round trips equal: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
