"""The git side of the reconciler: a commit's agents, its files on disk, one git thread.

gitpython's object readers are not thread-safe, so every git call runs on the one thread
this module owns. The loop, steering (undo), restore, recall after a restart and the evals
all read commits through here, so "the agents declared at a commit" means one thing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from controller.reconciler.manifest_cache import ManifestCache
from controller.source import mirror as mirrors
from controller.source.commit_tree import CommitTree
from controller.specs import loading
from controller.specs.model import Agent

T = TypeVar("T")


@dataclass(frozen=True)
class Loaded:
    result: loading.LoadResult
    commit: mirrors.Commit
    tree: CommitTree


class Commits:
    def __init__(
        self,
        mirror: mirrors.Mirror,
        manifests: ManifestCache,
        *,
        manifests_root: str,
        checkouts_dir: Path | None,
    ) -> None:
        self.mirror = mirror
        self.manifests = manifests
        self.manifests_root = manifests_root
        self.checkouts_dir = checkouts_dir  # None: the driver never runs agents from files
        self._git = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-git")

    async def in_git(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function` on the git thread."""
        return await asyncio.get_running_loop().run_in_executor(self._git, function, *args)

    async def load(self, sha: str) -> Loaded:
        return await self.in_git(self.load_now, sha)

    def load_now(self, sha: str) -> Loaded:
        """On the git thread only: the commit's manifests, parsed once per content."""
        tree = self.mirror.tree(sha)
        result = self.manifests.collect(tree, self.manifests_root)
        return Loaded(result, self.mirror.commit(sha), tree)

    async def agent_at(self, sha: str, name: str, version: str) -> Agent | None:
        """`name` as declared at `sha`, if that still gives `version`."""
        loaded = await self.load(sha)
        return next(
            (a for a in loaded.result.agents if a.name == name and a.version == version), None
        )

    async def checkout(self, sha: str) -> Path | None:
        """The commit's files on disk, for drivers that run agents from them."""
        if self.checkouts_dir is None:
            return None
        return await self.in_git(self.mirror.export, sha, self.checkouts_dir / sha)

    def close(self) -> None:
        self._git.shutdown(wait=False, cancel_futures=True)
