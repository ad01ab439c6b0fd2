"""`shipyard up`, the README's run command: example agents served with URLs printed, and
the printed next steps (commit, push a branch, merge, push main) working as written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from controller.cli import quickstart_repository
from preview import naming
from tests.integration.controller_harness import free_port, pid_alive, wait_for

CHECKOUT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IDENTITY = {
    "GIT_AUTHOR_NAME": "Ann",
    "GIT_AUTHOR_EMAIL": "ann@example.com",
    "GIT_COMMITTER_NAME": "Ann",
    "GIT_COMMITTER_EMAIL": "ann@example.com",
}


@pytest.fixture
def git_as_a_user(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A person's git: an identity, no global or system configuration of this machine."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def git(cwd: Path, *arguments: str) -> str:
    done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_example_ships_in_the_package_and_prepares_outside_the_checkout(
    tmp_path: Path,
) -> None:
    """What a wheel installs (setuptools' build_py, as `pip install .`), run from elsewhere."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, source / name)
    for name in ("controller", "preview", "schemas", "examples"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(CHECKOUT / name, source / name, ignore=skip)
    built = tmp_path / "site-packages"
    build = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "--build-lib", str(built)],
        cwd=source, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert (built / "examples" / "agents-repo" / "agents" / "support-bot.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import sys; from pathlib import Path\n"
        "from controller.cli import quickstart_repository as q\n"
        "made = q.prepare(Path('state').resolve())\n"
        "print(q.__file__); print(made.served); print(made.clone)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(built)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    module, served, clone = ran.stdout.split()
    assert Path(module).is_relative_to(built)
    assert Path(served) == elsewhere / "state" / "agents.git"
    assert git(Path(served), "rev-parse", "--is-bare-repository") == "true"
    branches = git(Path(served), "for-each-ref", "--format=%(refname:short)", "refs/heads")
    assert branches.split() == ["feature/friendlier-support", "main"]
    assert (Path(clone) / "agents" / "support-bot.yaml").is_file()


def test_commit_and_push_from_the_clone_reach_the_served_repository(
    tmp_path: Path, git_as_a_user: dict[str, str]
) -> None:
    made = quickstart_repository.prepare(tmp_path / "quickstart")
    clone = made.clone
    assert git(clone, "remote", "get-url", "origin") == str(made.served)
    git(clone, "switch", "-c", "my-change")
    (clone / "agents" / "prompts" / "support-bot.md").write_text("Be brief.\n")
    git(clone, "commit", "-qam", "Be brief")
    git(clone, "push", "-q", "-u", "origin", "my-change")
    git(clone, "switch", "-q", "main")
    git(clone, "merge", "-q", "my-change")
    git(clone, "push", "-q", "origin", "main")  # refused if the served one had main checked out
    assert git(made.served, "rev-parse", "main") == git(clone, "rev-parse", "HEAD")
    # Run again, it keeps the repositories and the commits in them.
    again = quickstart_repository.prepare(tmp_path / "quickstart")
    assert again == made
    assert git(made.served, "log", "-1", "--format=%s", "main") == "Be brief"


def test_a_clone_left_by_an_older_up_becomes_served_with_its_commits(
    tmp_path: Path, git_as_a_user: dict[str, str]
) -> None:
    old = tmp_path / "quickstart" / "agents-repo"
    old.mkdir(parents=True)
    git(old, "init", "-q", "--initial-branch=main")
    (old / "README.md").write_text("mine\n")
    git(old, "add", "README.md")
    git(old, "commit", "-qm", "My own commit")
    made = quickstart_repository.prepare(tmp_path / "quickstart")
    assert git(made.served, "log", "-1", "--format=%s", "main") == "My own commit"
    assert git(old, "rev-parse", "--abbrev-ref", "main@{upstream}") == "origin/main"


def next_steps(text: str) -> list[str]:
    block = text.split("Next, in another terminal", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines()[1:] if line.strip()]


def run_steps(steps: list[str], env: dict[str, str], cwd: Path) -> str:
    """Steps as one terminal runs them; any failing step fails the run."""
    check = 'status=$?; [ "$status" -eq 0 ] || exit "$status"'
    script = "".join(f"{step}\n{check}\n" for step in steps)
    done = subprocess.run(
        ["sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, (steps, done.stdout, done.stderr)
    return done.stdout


def test_up_serves_production_and_a_preview_and_its_next_steps_work(
    tmp_path: Path, git_as_a_user: dict[str, str]
) -> None:
    port = free_port()
    output = tmp_path / "up.log"
    command = [
        str(BIN / "shipyard"), "up", "--port", str(port),
        "--state-dir", str(tmp_path / "quickstart"),
    ]  # fmt: skip
    with output.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    http = httpx.Client(trust_env=False, timeout=10)

    def environments() -> dict[str, dict[str, object]]:
        items = http.get(f"http://127.0.0.1:{port}/api/v1/environments").json()["items"]
        return {item["name"]: item for item in items}

    try:
        text = wait_for(
            lambda: output.read_text() if "shipyard get agents" in output.read_text() else None,
            timeout=60,
            what="the quickstart banner",
        )
        urls = re.findall(r"(http://\S+\.localhost:\d+/)\s+(\w+)\s+ready", text)
        served = {url.split("--", 1)[1].split(".")[0] for url, _ in urls}
        assert "production" in served
        assert any(name.startswith("preview-feature-friendlier") for name in served)
        assert len(urls) == 6, text
        for url, version in urls:
            host = url.removeprefix("http://").rstrip("/")
            reply = http.get(f"http://127.0.0.1:{port}/", headers={"host": host})
            assert reply.status_code == 200
            assert reply.json()["version"] == version
            assert reply.headers["x-shipyard-version"] == version
        pids = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(process.pid), "-f", "server.py"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
        ]
        assert len(pids) == 6

        # The printed next steps, pasted into a shell as they are: a branch gets a
        # preview, and merging it to main promotes it and retires the preview.
        steps = next_steps(text)
        split = next(i for i, step in enumerate(steps) if step.startswith("shipyard get previews"))
        assert steps[0].startswith("cd "), steps
        run_steps(steps[: split + 1], git_as_a_user, tmp_path)
        preview = naming.environment_name("my-change", "main")
        wait_for(lambda: preview in environments(), timeout=60, what=f"{preview} to appear")
        run_steps([steps[0], *steps[split + 1 :]], git_as_a_user, tmp_path)  # the same terminal
        main = git(tmp_path / "quickstart" / "agents.git", "rev-parse", "main")
        wait_for(
            lambda: (
                environments()["production"]["commit"] == main and preview not in environments()
            ),
            timeout=60,
            what="production at the merge, the preview retired",
        )
    finally:
        http.close()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode in (0, -signal.SIGINT)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if pid_alive(pid)]
