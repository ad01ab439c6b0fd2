"""The manifest cache: unchanged content is parsed once, any content change is seen."""

from __future__ import annotations

from pathlib import Path

from controller.reconciler.manifest_cache import ManifestCache
from controller.source.mirror import Mirror
from controller.specs import loading
from tests.gitrepos import Upstream

AGENT = """\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata: {{name: {name}}}
spec:
  run: {{command: [python3, a.py]}}
  model: {{provider: fake, name: m}}
  prompt: {{file: prompts/{name}.md}}
"""


def test_only_changed_files_are_parsed_and_results_match_the_loader(
    upstream: Upstream, tmp_path: Path
) -> None:
    files: dict[str, str | None] = {f"agents/{n}.yaml": AGENT.format(name=n) for n in "abc"}
    files.update({f"prompts/{n}.md": f"prompt {n}" for n in "abc"})
    first = upstream.commit(files, branch="main")
    second = upstream.commit({"agents/b.yaml": AGENT.format(name="b") + "  replicas: 2\n"})
    third = upstream.commit({"prompts/c.md": "a new prompt for c"})
    # c's first prompt again, in a new tree: only c (whose prompt differs) is re-read.
    fourth = upstream.commit({"prompts/c.md": "prompt c", "README.md": "new tree"})
    upstream.push("main")
    mirror = Mirror(str(upstream.bare), tmp_path / "mirror.git")
    mirror.fetch()
    cache = ManifestCache()
    for sha, misses in ((first, 3), (second, 1), (third, 1), (fourth, 1), (first, 0)):
        before = cache.misses
        cached = cache.collect(mirror.tree(sha), "agents")
        assert cache.misses - before == misses, sha
        fresh = loading.collect(mirror.tree(sha), "agents")
        assert [(a.name, a.version) for a in cached.agents] == [
            (a.name, a.version) for a in fresh.agents
        ]


def test_a_tree_loaded_before_is_not_read_again(upstream: Upstream, tmp_path: Path) -> None:
    first = upstream.commit({"agents/a.yaml": AGENT.format(name="a")}, branch="main")
    upstream.push("main")
    mirror = Mirror(str(upstream.bare), tmp_path / "mirror.git")
    mirror.fetch()
    cache = ManifestCache()
    loaded = cache.collect(mirror.tree(first), "agents")  # a problem: no prompt file
    assert loaded.problems
    # The same tree holds the same files: the same result, problems included.
    assert cache.collect(mirror.tree(first), "agents") is loaded
    assert cache.collect(mirror.tree(first), "other") is not loaded


def test_results_with_problems_are_not_kept(upstream: Upstream, tmp_path: Path) -> None:
    broken = upstream.commit({"agents/a.yaml": AGENT.format(name="a")}, branch="main")
    fixed = upstream.commit({"prompts/a.md": "now it exists"})
    upstream.push("main")
    mirror = Mirror(str(upstream.bare), tmp_path / "mirror.git")
    mirror.fetch()
    cache = ManifestCache()
    assert cache.collect(mirror.tree(broken), "agents").problems
    result = cache.collect(mirror.tree(fixed), "agents")
    assert result.ok
    assert [a.name for a in result.agents] == ["a"]
