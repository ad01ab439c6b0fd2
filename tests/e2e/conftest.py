"""Real-cluster end-to-end tests run only where a cluster exists.

Set `SHIPYARD_E2E_KUBECONFIG` to a kubeconfig (the GitHub workflow uses kind) and
`SHIPYARD_E2E_IMAGE` to an image of the example agent the cluster can pull.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

KUBECONFIG = os.environ.get("SHIPYARD_E2E_KUBECONFIG")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if KUBECONFIG:
        return
    reason = "no cluster here: set SHIPYARD_E2E_KUBECONFIG to run the real-cluster e2e tests"
    print(f"\ntests/e2e skipped: {reason}")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.skip(reason=reason))
