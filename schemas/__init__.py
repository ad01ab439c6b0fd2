"""Ships Shipyard's JSON Schemas inside the wheel, so `shipyard validate` needs no network."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

AGENT_V1ALPHA1 = "agent.v1alpha1.schema.json"
EVALSUITE_V1ALPHA1 = "evalsuite.v1alpha1.schema.json"


def text(name: str = AGENT_V1ALPHA1) -> str:
    """The schema file's text, exactly as shipped."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def load(name: str = AGENT_V1ALPHA1) -> dict[str, Any]:
    """The parsed schema; cached because it never changes within a process."""
    document: dict[str, Any] = json.loads(text(name))
    return document
