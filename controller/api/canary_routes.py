"""A running canary folded into its agent's stable upstream, for the router's table.

Done when the table changes (a canary starts, changes weight or ends), not per request,
so the request path only reads the folded entry and draws once (`traffic_split`).
"""

from __future__ import annotations

import dataclasses

from controller.api import proxy
from controller.targets.local.target import CanaryServing


def fold(stable: proxy.Upstream, canary: CanaryServing | None) -> proxy.Upstream:
    """`stable` answering alone, or sharing its traffic with `canary` by weight."""
    if canary is None:
        return dataclasses.replace(stable, canary=None, canary_weight=0, sticky_header=None)
    serving = canary.serving
    return dataclasses.replace(
        stable,
        canary=proxy.Upstream(serving.agent, serving.environment, serving.version, serving.port),
        canary_weight=canary.weight,
        sticky_header=canary.sticky_header.encode() if canary.sticky_header else None,
    )
