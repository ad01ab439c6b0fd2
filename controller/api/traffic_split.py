"""Which version of an agent answers one request while a canary runs beside the stable one.

O(1) per request: one random draw, or, with a sticky header, one hash of its value, so
a user or conversation keeps meeting the same version at a given weight (and, since
weights only rise, keeps the canary once it has it).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.api.proxy import Upstream


def choose(stable: Upstream, scope: MutableMapping[str, Any]) -> Upstream:
    """`stable`, or its canary for `canary_weight` percent of requests."""
    canary = stable.canary
    if canary is None or stable.canary_weight <= 0:
        return stable
    if stable.canary_weight >= 100:
        return canary
    return canary if bucket(stable.sticky_header, scope) < stable.canary_weight else stable


def bucket(sticky_header: bytes | None, scope: MutableMapping[str, Any]) -> int:
    """0 to 99: from the sticky header's value when the request carries it, else at random."""
    if sticky_header is not None:
        for name, value in scope.get("headers", ()):
            if name.lower() == sticky_header:
                return zlib.crc32(value) % 100
    return random.randrange(100)  # noqa: S311 - spreading load, not a secret
