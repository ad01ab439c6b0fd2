"""The README's two Quickstart commands, as a new user on Debian or Ubuntu runs them.

Both are read out of README.md (`tests/readme_commands.py`). The run command runs under
the system Python where it is Debian's or Ubuntu's own, marked externally managed
(PEP 668), which refuses a plain `pip install`: in a copy of this working tree, with
`python3` meaning that interpreter, until `shipyard up` prints its URLs and one of them
answers over HTTP; then Ctrl-C (SIGINT to the process group, as a terminal sends it) must
stop everything. The test command is what CI runs (`.ci/run`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.controller_harness import free_port, wait_for
from tests.readme_commands import quickstart_commands

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
# What .gitignore keeps out of a clone, for a working tree that is not a git checkout.
UNTRACKED = (
    *(".venv", ".shipyard", "__pycache__", "*_cache", ".hypothesis"),
    *("build", "dist", "*.egg-info", ".work"),
)
URL_LINE = re.compile(r"(http://\S+\.localhost:\d+/)\s+(\w+)\s+ready")


def test_ci_runs_the_readmes_test_command() -> None:
    test_command = quickstart_commands().test
    assert test_command == "bash .ci/test"
    assert f"exec {test_command}" in (ROOT / ".ci" / "run").read_text().splitlines()


def externally_managed_system_python() -> Path:
    """Debian's or Ubuntu's own Python, able to make venvs; skips (saying why) elsewhere."""
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"no system Python at {SYSTEM_PYTHON} (not a Debian-like machine)")
    probe = subprocess.run(
        [
            str(SYSTEM_PYTHON), "-c",
            "import sys, sysconfig; print(sysconfig.get_path('stdlib')); "
            "print(sys.version_info >= (3, 11))",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stdlib, recent_enough = probe.stdout.split()
    if not (Path(stdlib) / "EXTERNALLY-MANAGED").is_file():
        pytest.skip(f"{SYSTEM_PYTHON} is not marked externally managed (PEP 668)")
    if recent_enough != "True":
        pytest.skip(f"{SYSTEM_PYTHON} is older than the Python 3.11 Shipyard needs")
    venv_ready = subprocess.run([str(SYSTEM_PYTHON), "-c", "import ensurepip"], check=False)
    if venv_ready.returncode != 0:
        reason = f"{SYSTEM_PYTHON} cannot make venvs: python3-venv is missing (.ci/test adds it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SYSTEM_PYTHON


def copy_of_the_working_tree(destination: Path) -> Path:
    """The files a fresh clone would have, with this working tree's changes."""
    if not (ROOT / ".git").exists():  # a checkout without git (e.g. a downloaded archive)
        ignored = shutil.ignore_patterns(*UNTRACKED)
        return Path(shutil.copytree(ROOT, destination, ignore=ignored, symlinks=True))
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def user_environment(bin_dir: Path, port: int) -> dict[str, str]:
    """The environment of a user's shell on that machine: `python3` is the system one, no
    venv is active. Pip's own settings and cache stay, so the install runs from the cache."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
        and not name.startswith("SHIPYARD_")
    }
    environment["PATH"] = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    environment["SHIPYARD_PORT"] = str(port)  # the README's default, 8080, may be taken here
    return environment


def test_readme_run_command_serves_under_the_externally_managed_system_python(
    tmp_path: Path,
) -> None:
    system_python = externally_managed_system_python()
    run_command = quickstart_commands().run
    checkout = copy_of_the_working_tree(tmp_path / "shipyard")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(system_python)
    port = free_port()
    log_path = tmp_path / "run-command.log"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", run_command],
            cwd=checkout,
            env=user_environment(bin_dir, port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    group = process.pid

    def banner() -> str | None:
        text = log_path.read_text(errors="replace")
        if process.poll() is not None:
            raise AssertionError(f"the run command exited with {process.returncode}:\n{text}")
        return text if "Try:" in text else None

    try:
        text = wait_for(banner, timeout=600, what="the run command's URLs")
        urls = URL_LINE.findall(text)
        assert urls, text
        production = [url for url, _ in urls if "--production." in url]
        assert production, text
        host = production[0].removeprefix("http://").rstrip("/")
        with httpx.Client(trust_env=False, timeout=10) as client:
            reply = client.get(f"http://127.0.0.1:{port}/", headers={"host": host})
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-shipyard-version"] in dict(urls).values()
    finally:
        os.killpg(group, signal.SIGINT)  # Ctrl-C: the whole foreground job
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(group, signal.SIGKILL)
    assert process.returncode in (0, 128 + signal.SIGINT, -signal.SIGINT), log_path.read_text()

    def group_gone() -> bool:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(group_gone, timeout=30, what="every process of the run command to exit")
    assert (checkout / ".venv" / "bin" / "shipyard").is_file()  # what the next steps call
    venv_config = (checkout / ".venv" / "pyvenv.cfg").read_text()
    assert f"executable = {system_python.resolve()}" in venv_config.splitlines(), venv_config
