"""The router's table with each running canary folded into its agent's stable upstream.

Built where the table is built (not per request), so the request path only reads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from controller.api import proxy
from controller.targets.local.target import CanaryServing, Serving


def with_canaries(
    served: dict[str, proxy.Upstream],
    canaries: list[CanaryServing],
    url_of: Callable[[Serving], str],
) -> dict[str, proxy.Upstream]:
    for canary in canaries:
        host = proxy.host_of(url_of(canary.serving))
        stable = served.get(host)
        if stable is None:
            continue
        serving = canary.serving
        served[host] = dataclasses.replace(
            stable,
            canary=proxy.Upstream(
                serving.agent, serving.environment, serving.version, serving.port
            ),
            canary_weight=canary.weight,
            sticky_header=canary.sticky_header.encode() if canary.sticky_header else None,
        )
    return served
