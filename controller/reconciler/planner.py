"""Desired against observed: the minimal set of actions for one environment.

Pure functions, no I/O: the reconciler feeds in what the manifests want and what the
target runs, and gets back only the moves that change something. An agent whose version
is unchanged costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.specs.model import Agent


@dataclass(frozen=True)
class Deploy:
    """Roll `agent` to its version (from `current`, or a first start when None)."""

    agent: Agent
    current: str | None


@dataclass(frozen=True)
class Remove:
    """Stop an agent that the environment no longer declares."""

    agent: str
    current: str


Action = Deploy | Remove


def plan(
    desired: Mapping[str, Agent],
    running: Mapping[str, str],
    *,
    failed: Mapping[str, str] | None = None,
    pinned: Mapping[str, str] | None = None,
) -> list[Action]:
    """Actions that take `running` (agent → version) to `desired`.

    `failed` (agent → version) holds versions whose rollout failed here: they are not
    retried until a commit changes the agent. `pinned` (agent → version) holds agents a
    person pinned: syncing leaves them alone.
    """
    failed = failed or {}
    pinned = pinned or {}
    actions: list[Action] = []
    for name in sorted(desired):
        agent = desired[name]
        if name in pinned:
            continue
        if running.get(name) == agent.version or failed.get(name) == agent.version:
            continue
        actions.append(Deploy(agent, running.get(name)))
    actions.extend(
        Remove(name, running[name])
        for name in sorted(running)
        if name not in desired and name not in pinned
    )
    return actions
