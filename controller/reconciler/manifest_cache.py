"""Manifests parsed once per content, not once per commit.

A push that changes one agent in a repository of a thousand must not re-parse and
re-validate the other 999. Git names content: a manifest file whose blob and whose
referenced prompt files' blobs are unchanged gives the same agents, so the reconciler
keeps each file's result keyed by those blob ids and runs the loader only on what is
new. Results with problems are never kept: a missing prompt file may appear later
without the manifest changing. A whole load is also kept by the tree's id: the same
tree (the evaluation of a commit just deployed, a preview at production's commit) holds
the same files, problems included, so it is loaded once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from controller.specs import loading, model
from controller.specs import tree as trees

MAX_ENTRIES = 20_000
MAX_LOADS = 16


class BlobTree(trees.Tree, Protocol):
    @property
    def identity(self) -> str:
        """Equal for two trees exactly when they hold the same files."""
        ...

    def blob_id(self, path: str) -> str | None: ...


class ManifestCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, target: str | None = None) -> None:
        self.max_entries = max_entries
        self.target = target  # what the loader also checks for (`semantic.TARGETS`)
        # (path, blob) → (referenced path → blob, the file's result)
        self._entries: OrderedDict[
            tuple[str, str], tuple[dict[str, str | None], loading.FileResult[model.Agent]]
        ] = OrderedDict()
        self._loads: OrderedDict[tuple[str, str], loading.LoadResult] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def collect(self, tree: BlobTree, root: str) -> loading.LoadResult:
        """`loading.collect(tree, root)`, reusing every file whose content is unchanged."""
        key = (tree.identity, root)
        loaded = self._loads.get(key)
        if loaded is not None:
            self._loads.move_to_end(key)
            return loaded
        try:
            files = loading.manifest_files(tree, root)
        except (trees.TreeError, OSError) as error:
            return loading.unlisted(root, error)
        loaded = loading.combine(self._file(tree, path) for path in files)
        self._loads[key] = loaded
        while len(self._loads) > MAX_LOADS:
            self._loads.popitem(last=False)
        return loaded

    def _file(self, tree: BlobTree, path: str) -> loading.FileResult[model.Agent]:
        blob = tree.blob_id(path)
        key = (path, blob or "")
        cached = self._entries.get(key) if blob else None
        if cached is not None and all(
            tree.blob_id(referenced) == known for referenced, known in cached[0].items()
        ):
            self._entries.move_to_end(key)
            self.hits += 1
            return cached[1]
        self.misses += 1
        result = loading.load_file(tree, path, self.target)
        if blob and not result.problems:
            referenced = {
                agent.spec.prompt.file: tree.blob_id(agent.spec.prompt.file)
                for agent in result.agents
                if agent.spec.prompt.file is not None
            }
            self._entries[key] = (referenced, result)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return result
