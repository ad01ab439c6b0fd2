"""Measure what pruning gives back, and what one pass costs, on exports of a real repository.

Why this exists: the controller exports every deployed commit into `checkouts/` and
its files into `checkouts/.blobs/`; before pruning, nothing there was ever removed. This
script makes a repository of `--files` files, commits `--commits` branch commits that
each change `--changed` files (as pushes to preview branches do), exports every commit
with the controller's own `Mirror.export`, then prunes all but `--keep` of them with the
controller's own `export_pruning`, and prints disk use and inode counts before and after,
and the pass's wall time:

    python bench/disk_pruning.py [--files 300] [--commits 200] [--changed 3] [--keep 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.source import export_pruning
from controller.source.mirror import Mirror
from tests.gitrepos import Upstream


def usage(root: Path) -> tuple[int, int]:
    """(bytes allocated, inodes) under `root`, each inode counted once (hard links)."""
    seen: set[int] = set()
    allocated = 0
    for directory, names, files in os.walk(root):
        for name in [*names, *files]:
            status = os.lstat(os.path.join(directory, name))
            if status.st_ino not in seen:
                seen.add(status.st_ino)
                allocated += status.st_blocks * 512
    return allocated, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--changed", type=int, default=3)
    parser.add_argument("--keep", type=int, default=10)
    options = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        upstream = Upstream(root / "upstream")
        files: dict[str, str | None] = {
            f"agent/module{index}.py": f"# module {index}\n" + "x = 1\n" * 200
            for index in range(options.files)
        }
        shas = [upstream.commit(files, branch="main")]
        for number in range(1, options.commits):
            changed: dict[str, str | None] = {
                f"agent/module{(number * options.changed + k) % options.files}.py": (
                    f"# commit {number} change {k}\n" + "y = 2\n" * 200
                )
                for k in range(options.changed)
            }
            shas.append(upstream.commit(changed, branch="main"))
        upstream.push("main")
        mirror = Mirror(str(upstream.bare), root / "mirror.git")
        mirror.fetch()
        checkouts = root / "checkouts"
        for sha in shas:
            mirror.export(sha, checkouts / sha)
        mirror.close()
        before = usage(checkouts)
        needed = set(shas[-options.keep :])
        started = time.perf_counter()
        moved = export_pruning.set_aside(
            checkouts, export_pruning.unneeded_checkouts(checkouts, needed)
        )
        pruned = export_pruning.delete(checkouts, moved)
        seconds = time.perf_counter() - started
        after = usage(checkouts)
    print(
        f"{options.commits} exported commits of {options.files} files, "
        f"{options.changed} changed per commit; kept the newest {options.keep}"
    )
    print(f"before: {before[0] / 2**20:.1f} MiB, {before[1]} inodes")
    print(f"after:  {after[0] / 2**20:.1f} MiB, {after[1]} inodes")
    print(f"ratio:  {before[0] / max(after[0], 1):.1f}x bytes, {before[1] / after[1]:.1f}x inodes")
    print(
        f"pass:   {seconds:.2f} s; removed {pruned.checkouts} checkouts, {pruned.blobs} blobs "
        f"({pruned.blob_bytes / 2**20:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
