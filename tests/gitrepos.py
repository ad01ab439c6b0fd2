"""Real git repositories for tests: a bare remote and a working clone that pushes to it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(cwd: Path, *arguments: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *arguments],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


class Upstream:
    """A bare repository playing the remote, and a working clone that pushes to it."""

    def __init__(self, root: Path, default: str = "main") -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        root.mkdir(parents=True, exist_ok=True)
        git(root, "init", "--quiet", "--bare", f"--initial-branch={default}", str(self.bare))
        git(root, "init", "--quiet", f"--initial-branch={default}", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    def commit(
        self,
        files: dict[str, str | None],
        message: str = "change",
        branch: str | None = None,
        date: str | None = None,
    ) -> str:
        """Write (or with None, delete) files on `branch`, commit, return the sha."""
        if branch is not None:
            git(self.work, "checkout", "--quiet", "-B", branch)
        for relative, content in files.items():
            target = self.work / relative
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        git(self.work, "add", "--all")
        dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else None
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message, env=dates)
        return git(self.work, "rev-parse", "HEAD")

    def symlink(self, link: str, target: str) -> None:
        path = self.work / link
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)

    def push(self, *refspecs: str, force: bool = False) -> None:
        git(self.work, "push", "--quiet", *(["--force"] if force else []), "origin", *refspecs)

    def git(self, *arguments: str) -> str:
        """Any git command in the working clone."""
        return git(self.work, *arguments)
