"""Where `shipyard logs` reads from when no local process answers: the cluster's pods.

The API's log route serves the local target's captured output itself; on the Kubernetes
target it hands over to here, which asks the target for the agent's pod logs in the
environment (every replica of the version it runs there) as the same JSON entries,
each with the `source` it came from (`pod/<name>/<container>`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from controller.reconciler.target import Target
from controller.targets.kubernetes import pod_logs
from controller.targets.kubernetes.target import KubernetesTarget

LogOptions = pod_logs.LogOptions


class HasTarget(Protocol):
    """Whatever knows the target agents run on (the controller, to the API)."""

    @property
    def target(self) -> Target: ...


async def from_pods(
    controller: HasTarget,
    environment: str,
    agent: str,
    options: pod_logs.LogOptions,
) -> AsyncIterator[dict[str, Any]] | None:
    """The agent's pod log entries; None when the target runs no pods (the local one).
    Raises `NotFound` without pods and `ApiError` (Invalid: the kubelet's refusal, such as
    no previous container) before any entry is produced."""
    target = controller.target
    if not isinstance(target, KubernetesTarget):
        return None
    return await target.logs(environment, agent, options)
