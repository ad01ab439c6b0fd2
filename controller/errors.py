"""The project's exception tree, documented in one place.

Every error Shipyard raises on purpose derives from `ShipyardError`, so callers (the CLI,
the API, the reconciler) can tell a problem we understand from a bug.

    ShipyardError
    ├── ManifestInvalid      manifests failed to load or validate; carries every problem
    ├── NotFound             an environment, agent or revision that does not exist
    ├── Conflict             a request that contradicts the current state
    └── Transient            a hiccup of something we depend on (an API, the network):
                             retried with backoff, never a verdict on a version
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.specs.problems import Problem


class ShipyardError(Exception):
    """Base of every error Shipyard raises deliberately."""


class ManifestInvalid(ShipyardError):
    """One or more manifests are invalid; `problems` lists all of them, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        first = self.problems[0].render() if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{first}{more}")


class NotFound(ShipyardError):
    """Something a request named does not exist; the message says what does."""


class Conflict(ShipyardError):
    """A request cannot be honoured in the current state (say, undo with no history)."""


class Transient(ShipyardError):
    """A failure that says nothing about what was asked for and may pass if retried."""
