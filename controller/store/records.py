"""Plain values the store hands out: rows as frozen dataclasses, never raw tuples."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class RolloutResult(enum.StrEnum):
    PROGRESSING = "Progressing"
    HEALTHY = "Healthy"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"
    ABORTED = "Aborted"  # a canary stopped by its analysis or `rollout abort`


@dataclass(frozen=True)
class Deployed:
    """The version of one agent serving in one environment, and where it came from."""

    agent: str
    environment: str
    version: str
    commit: str
    branch: str
    since: float


@dataclass(frozen=True)
class Revision:
    """A version as deployed from a commit; numbered per agent and environment."""

    number: int
    agent: str
    environment: str
    version: str
    commit: str
    branch: str
    author: str
    message: str
    created_at: float
    manifest_json: str
    # The text of the prompt file the manifest names (None for an inline prompt, or a
    # revision recorded before prompt texts were kept): diffs of history show it.
    prompt_text: str | None = None


@dataclass(frozen=True)
class Rollout:
    id: int
    agent: str
    environment: str
    from_version: str | None
    to_version: str
    commit: str
    author: str
    started_at: float
    finished_at: float | None
    result: RolloutResult
    reason: str
    steps: tuple[dict[str, Any], ...] = ()  # a canary's steps as they ran, oldest first


@dataclass(frozen=True)
class Event:
    id: int
    time: float
    type: str  # "Normal" or "Warning", as Kubernetes events
    reason: str
    environment: str
    agent: str
    message: str


@dataclass(frozen=True)
class EnvironmentRecord:
    """An environment as last reconciled: its branch, commit and lifecycle marks."""

    name: str
    branch: str
    commit: str
    last_push_at: float
    retired_commit: str | None  # torn down (expired, evicted, merged) at this commit


class PinKind(enum.StrEnum):
    """Why an agent is held, which decides what lifts the hold."""

    PAUSE = "pause"  # `rollout pause`: holds through new commits until `rollout resume`
    UNDO = "undo"  # `rollout undo`: lifted by a commit that changes the agent, or resume


@dataclass(frozen=True)
class Pin:
    """A person's hold on one agent in one environment: syncing leaves it at `version`.

    `pinned_from` is the version the branch wanted when the pin was set; for an undo pin,
    a commit that changes the agent (so the branch wants something else) lifts it. A pause
    holds until resumed, whatever the commits (kubectl's `rollout pause`).
    """

    environment: str
    agent: str
    version: str
    pinned_from: str | None
    actor: str
    reason: str
    created_at: float
    kind: PinKind = PinKind.UNDO


@dataclass(frozen=True)
class ReviewRequest:
    """A pull or merge request as webhooks described it: whether its code comes from a
    fork, and its labels (case-folded), which decide whether its preview gets secrets."""

    branch: str  # the name the controller deploys the request's head under
    number: int  # GitHub's number, GitLab's iid
    from_fork: bool
    labels: frozenset[str]
