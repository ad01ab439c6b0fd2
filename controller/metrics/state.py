"""What runs right now, as the metrics see it: the snapshot taken at every scrape.

The reconciler builds a `State` on demand; the collector yields current-state series
from it and prunes every counter and histogram whose agent, environment or version is
no longer part of it. That is how retired versions and torn-down previews disappear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SHORT_COMMIT = 12
MAX_LABEL_VALUE = 63


@dataclass(frozen=True)
class VersionInfo:
    """One version serving one agent in one environment."""

    agent: str
    environment: str
    version: str
    commit: str
    branch: str

    def labels(self) -> tuple[str, str, str, str, str]:
        """Label values for `shipyard_agent_version_info`, bounded in length."""
        return (
            self.agent,
            self.environment,
            self.version,
            self.commit[:SHORT_COMMIT],
            bounded(self.branch),
        )


@dataclass(frozen=True)
class State:
    """A snapshot of the controller, taken when Prometheus scrapes."""

    versions: tuple[VersionInfo, ...] = ()
    # Every live environment (production and each preview not torn down).
    environments: frozenset[str] = frozenset()
    # (environment, agent) pairs an environment declares or runs.
    agents: frozenset[tuple[str, str]] = frozenset()
    # Environment → manifest problems at its last observed commit.
    manifest_errors: Mapping[str, int] = field(default_factory=dict)
    # Preview state (see `PREVIEW_STATES`) → how many previews are in it.
    previews: Mapping[str, int] = field(default_factory=dict)
    # (agent, environment, version, "pass" | "fail") → eval cases with that result.
    eval_cases: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)


# The states a preview can be in, always exported (0 when empty) so PromQL sees them.
PREVIEW_STATES = ("Ready", "Progressing", "Failed", "Stalled", "Retired")


def bounded(value: str, limit: int = MAX_LABEL_VALUE) -> str:
    """`value` cut to `limit` characters: no label value grows with user input."""
    return value[:limit]
