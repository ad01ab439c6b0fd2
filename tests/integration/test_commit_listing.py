"""A commit's listing read from the last one (only changed trees re-read) is git's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import OrderedDict
from pathlib import Path

import git

from controller.source import listing
from controller.source.mirror import Mirror
from tests.gitrepos import Upstream


def ls_tree(mirror: Path, sha: str) -> dict[str, listing.Entry]:
    """What `git ls-tree -r` says, the reference."""
    output = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--full-tree", sha],
        cwd=mirror,
        check=True,
        capture_output=True,
    ).stdout
    entries = {}
    for record in output.split(b"\0"):
        if record:
            meta, _, path = record.partition(b"\t")
            mode, _kind, blob = meta.split(b" ")
            entries[os.fsdecode(path)] = listing.Entry(mode, blob.decode())
    return entries


def history(upstream: Upstream) -> list[str]:
    """Commits that move files about in every way a tree can change."""
    work = upstream.work
    shas = [
        upstream.commit(
            {"a.txt": "a", "d/x.txt": "x", "d/e/y.txt": "y", "f": "file", "keep/k.txt": "k"},
            branch="main",
        )
    ]
    (work / "run.sh").write_text("#!/bin/sh\n")
    (work / "run.sh").chmod(0o755)
    upstream.symlink("link.md", "d/x.txt")
    shas.append(upstream.commit({"a.txt": "a2"}))  # executable and symlink added
    (work / "f").unlink()  # a file becomes a directory
    shas.append(upstream.commit({"f/inner.txt": "in"}))
    shutil.rmtree(work / "d")  # a directory becomes a file
    (work / "d").write_text("now a file")
    shas.append(upstream.commit({}))
    (work / "run.sh").chmod(0o644)  # only the mode changes
    upstream.git("update-index", "--add", "--cacheinfo", f"160000,{shas[0]},sub")
    upstream.git("commit", "--quiet", "-m", "gitlink")
    shas.append(upstream.git("rev-parse", "HEAD"))
    shas.append(upstream.commit({"keep/k.txt": None, "deep/a/b/c.txt": "c"}))
    upstream.push("main")
    return shas


def test_each_listing_read_from_another_is_gits_own(upstream: Upstream, tmp_path: Path) -> None:
    shas = history(upstream)
    mirror = Mirror(str(upstream.bare), tmp_path / "mirror.git")
    mirror.fetch()
    repo = git.Repo(mirror.path)
    trees = [repo.commit(sha).tree.hexsha for sha in shas]
    fresh = [listing.read(repo, tree) for tree in trees]
    for sha, read in zip(shas, fresh, strict=True):
        assert read.files == ls_tree(mirror.path, sha)
    # From every other commit's listing, forwards and backwards, with the tree objects
    # parsed so far shared as the controller shares them.
    parsed: OrderedDict[str, listing.Entries] = OrderedDict()
    for index, tree in enumerate(trees):
        for base in fresh:
            assert listing.read(repo, tree, base, parsed).files == fresh[index].files
    repo.close()
    mirror.close()


def test_listings_are_kept_by_tree(upstream: Upstream, tmp_path: Path) -> None:
    shas = history(upstream)
    mirror = Mirror(str(upstream.bare), tmp_path / "mirror.git")
    mirror.fetch()
    repo = git.Repo(mirror.path)
    kept = listing.Listings(kept=2)
    first = kept.get(repo, repo.commit(shas[0]).tree.hexsha)
    assert kept.get(repo, repo.commit(shas[0]).tree.hexsha) is first
    for sha in shas:
        assert kept.get(repo, repo.commit(sha).tree.hexsha).files == ls_tree(mirror.path, sha)
    assert kept.get(repo, repo.commit(shas[0]).tree.hexsha) is not first  # evicted, read again
    repo.close()
    mirror.close()
