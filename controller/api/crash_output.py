"""What the API says about ended agent instances: `logs --previous` and describe's Last State.

Only the local target keeps ended instances itself (`targets.local.terminations`); on
Kubernetes the same answers come from pod status and the kubelet's previous logs, which
that target reads on its own. Both answers name the version the instance ran, because a
failed rollout's crash belongs to the new version while the old one keeps serving.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from controller.targets.local.target import LocalTarget
from controller.targets.local.terminations import Termination

LAST_STATE_LINES = 10
"""Output lines `describe` shows of the last ended instance."""


def last_state(target: object, environment: str, agent: str) -> dict[str, Any] | None:
    """The most recently ended instance of the agent in the environment, as JSON, passing
    over routine stops (a healthy version replaced by a newer one)."""
    ended = _last(target, environment, agent, None, routine=False)
    return ended.as_dict(LAST_STATE_LINES) if ended is not None else None


def keeps_instances(target: object) -> bool:
    """Whether `target` keeps ended instances itself (else they are the kubelet's)."""
    return isinstance(target, LocalTarget)


def previous(target: object, environment: str, agent: str, version: str | None) -> Termination:
    """The instance `logs --previous` shows; 404 (with why) when there is none."""
    if not isinstance(target, LocalTarget):
        raise HTTPException(
            409, "this target keeps no ended instances here; read the pod's previous logs"
        )
    ended = _last(target, environment, agent, version)
    if ended is None:
        which = f"version {version} of {agent}" if version else agent
        raise HTTPException(
            404, f"no ended instance of {which} in {environment}: nothing to show with --previous"
        )
    return ended


def _last(
    target: object, environment: str, agent: str, version: str | None, *, routine: bool = True
) -> Termination | None:
    if not isinstance(target, LocalTarget):
        return None
    return target.terminations.last(agent, environment, version, routine=routine)
