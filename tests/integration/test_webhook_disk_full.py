"""A state directory that cannot be written: webhooks answer 503 and recover by themselves.

Two ways to make the disk refuse, both from outside the controller's process: a small
tmpfs filled to the last byte (needs root to mount), and a file-size limit lowered on
the running controller with prlimit(2) (any user), under which every write past the
first page fails the way a full disk fails. Neither touches Shipyard's code.
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, seed, wait_for
from tests.integration.webhook_payloads import signed_github

SECRET = "s3cret-webhook-key"


def delivery(shipyard: Shipyard) -> httpx.Response:
    body, headers = signed_github(SECRET, "ping", {"zen": "Design for failure."})
    return shipyard.http.post(shipyard.api("/hooks/github"), content=body, headers=headers)


def assert_refused_then_recovered(shipyard: Shipyard, make_room: Callable[[], None]) -> None:
    def refused() -> httpx.Response | None:
        reply = delivery(shipyard)
        return reply if reply.status_code != 200 else None

    # Pages the database already holds may take a few more writes before one must grow.
    full = wait_for(refused, what="a delivery to find the disk full")
    assert full.status_code == 503, full.text
    assert "state directory cannot be written" in full.json()["error"]
    assert full.headers["retry-after"] == "30"
    assert httpx.get(shipyard.api("/healthz"), timeout=10).status_code == 200

    make_room()
    wait_for(lambda: delivery(shipyard).status_code == 200, what="deliveries to succeed again")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs to hold the state directory, so that it can really run full."""
    mount = tmp_path / "state"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the prlimit test covers the rest)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write into `directory` until its filesystem refuses; the file that did it."""
    filler = directory / "filler"
    # Unbuffered: a buffered file would try its refused bytes again on close, and fail.
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler


def test_a_full_tmpfs_answers_503_and_recovers(upstream: Upstream, small_disk: Path) -> None:
    seed(upstream, "alpha")
    # The state directory is the mount itself; the controller's log stays outside it.
    shipyard = Shipyard(
        upstream.bare, small_disk, "--webhook-secret", SECRET, poll_interval="1h"
    ).start()
    try:
        filler = fill(small_disk)
        assert_refused_then_recovered(shipyard, filler.unlink)
    finally:
        shipyard.close()


def test_a_file_size_limit_answers_503_and_recovers(upstream: Upstream, tmp_path: Path) -> None:
    seed(upstream, "alpha")
    shipyard = Shipyard(
        upstream.bare, tmp_path / "state", "--webhook-secret", SECRET, poll_interval="1h"
    ).start()
    try:
        assert shipyard.process is not None
        pid = shipyard.process.pid
        unlimited = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        # No write may end past the first page: the next page SQLite appends fails.
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, unlimited[1]))

        def lift() -> None:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)

        assert_refused_then_recovered(shipyard, lift)
    finally:
        shipyard.close()
