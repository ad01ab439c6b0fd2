"""A recorded version placed again: its agent read back from its commit, files and secrets.

Undo, restore after a restart and the recall of the version to roll back to all start a
version that ran before from what the store says of it; each gets the same files and the
same secret rules as its first rollout had.
"""

from __future__ import annotations

from controller.reconciler import drivers
from controller.reconciler.commits import Commits
from controller.reconciler.secret_access import SecretAccess
from controller.specs.model import Agent


class Placer:
    def __init__(self, commits: Commits, secrets: SecretAccess) -> None:
        self.commits = commits
        self.secrets = secrets

    async def place(
        self,
        agent: Agent,
        environment: str,
        sha: str,
        branch: str,
        *,
        author: str = "",
        message: str = "",
    ) -> drivers.Placement:
        return drivers.Placement(
            agent,
            environment,
            sha,
            branch,
            author,
            message,
            await self.commits.checkout(sha),
            secrets=self.secrets.for_rollout(environment, branch),
        )
