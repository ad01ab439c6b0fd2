"""Which environment, if any, a pushed branch deploys to.

Not every branch deserves a preview (release trains, bots, work in progress), so the
repository's configuration narrows previews with include and exclude globs. The
default branch is production whatever those globs say: a pattern typo must never
stop production from deploying.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from preview.naming import PRODUCTION, environment_name


@dataclass(frozen=True)
class EnvironmentPolicy:
    """Maps branch names to environment names.

    Patterns are `fnmatch` globs matched case-sensitively against the full branch
    name. Unlike shell globs, `*` also matches `/`: `feature/*` covers
    `feature/a/b`, and `*/wip*` covers `team/x/wip-1`.
    """

    default_branch: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.default_branch:
            raise ValueError("default_branch must not be empty")
        for field, patterns in (("include", self.include), ("exclude", self.exclude)):
            # A bare string would be iterated as one pattern per character.
            if isinstance(patterns, str):
                raise TypeError(f"{field} must be a tuple of patterns, not a string")

    def environment_for(self, branch: str) -> str | None:
        """The environment `branch` deploys to, or None when it gets no preview."""
        if branch == self.default_branch:
            return PRODUCTION
        if not any(fnmatchcase(branch, pattern) for pattern in self.include):
            return None
        if any(fnmatchcase(branch, pattern) for pattern in self.exclude):
            return None
        return environment_name(branch, self.default_branch)


def is_production(environment: str) -> bool:
    """Whether `environment` names the production environment."""
    return environment == PRODUCTION
