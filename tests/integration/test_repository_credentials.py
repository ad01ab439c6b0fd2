"""Credentials in the repository URL: git gets them, nobody else sees them.

The remote is real: `git http-backend` behind basic auth on loopback. While git waits
for the server's answer, the server reads the command line of every git process on the
machine, which is what `ps` would show anyone.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.source import credentials, mirror
from tests.fakes.git_http import GitHttpServer, RedirectServer, available
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, seed

pytestmark = pytest.mark.skipif(not available(), reason="git http-backend is not installed")

USER = "deploy"
TOKEN = "tok-81c4e2a9f0"  # unlike any word or path, so a match can only be the token


def git_command_lines_holding(secret: str) -> list[str]:
    """Command lines of running git processes that contain `secret`."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone already, or not ours to read
        if argv and b"git" in os.path.basename(argv[0]) and secret.encode() in b" ".join(argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


@pytest.fixture
def server(upstream: Upstream) -> Iterator[GitHttpServer]:
    seed(upstream, "alpha")
    fake = GitHttpServer(upstream.bare.parent, USER, TOKEN)
    fake.probe = lambda: git_command_lines_holding(TOKEN)
    with fake.running():
        yield fake


def url_of(server: GitHttpServer) -> str:
    return server.url("remote.git").replace("http://", f"http://{USER}:{TOKEN}@")


def test_the_probe_sees_a_token_on_gits_command_line(server: GitHttpServer) -> None:
    # How git is usually called: the URL, token included, lands on the remote helper's
    # command line. The probe must see that, or its silence below would prove nothing.
    subprocess.run(
        ["git", "ls-remote", url_of(server)], check=True, capture_output=True, timeout=60
    )
    assert server.seen


def test_the_mirror_authenticates_without_a_command_line_or_file_holding_the_token(
    server: GitHttpServer, upstream: Upstream, tmp_path: Path
) -> None:
    source = mirror.Mirror(url_of(server), tmp_path / "mirror.git")
    source.fetch()
    assert source.branches() == {"main": upstream.git("rev-parse", "main")}
    assert server.authorized >= 2  # the ref advertisement and the fetch
    assert server.seen == []
    assert TOKEN not in (tmp_path / "mirror.git" / "config").read_text()
    source.close()


def test_a_mirror_configured_with_the_token_forgets_it(
    server: GitHttpServer, tmp_path: Path
) -> None:
    path = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    subprocess.run(
        ["git", "--git-dir", str(path), "config", "remote.origin.url", url_of(server)], check=True
    )
    source = mirror.Mirror(url_of(server), path)
    source.fetch()
    assert TOKEN not in (path / "config").read_text()
    source.close()


def test_a_bare_token_as_the_user_name_authenticates(upstream: Upstream, tmp_path: Path) -> None:
    seed(upstream, "alpha")
    fake = GitHttpServer(upstream.bare.parent, TOKEN, "")  # GitHub's `https://TOKEN@host/...`
    with fake.running():
        url = fake.url("remote.git").replace("http://", f"http://{TOKEN}@")
        source = mirror.Mirror(url, tmp_path / "mirror.git")
        source.fetch()
        assert source.branches() == {"main": upstream.git("rev-parse", "main")}
        source.close()


def test_wrong_credentials_fail_clearly_without_naming_them(
    server: GitHttpServer, tmp_path: Path
) -> None:
    wrong = url_of(server).replace(TOKEN, "tok-wrong-55d1")
    source = mirror.Mirror(wrong, tmp_path / "mirror.git")
    with pytest.raises(mirror.SourceUnavailable) as caught:
        source.fetch()
    assert "tok-wrong-55d1" not in str(caught.value)
    assert server.refused >= 1


def test_serve_shows_the_repository_without_credentials(
    server: GitHttpServer, tmp_path: Path
) -> None:
    shipyard = Shipyard(url_of(server), tmp_path / "state").start()
    try:
        listing = shipyard.http.get(shipyard.api("/api/v1/environments"))
        assert listing.json()["source"]["repo"] == server.url("remote.git").replace(
            "http://", "http://***@"
        )
        for path in ("/api/v1/environments", "/api/v1/events", "/metrics", "/api/v1/agents"):
            assert TOKEN not in shipyard.http.get(shipyard.api(path)).text, path
        assert server.seen == []
        assert TOKEN not in (tmp_path / "state" / "mirror.git" / "config").read_text()
    finally:
        shipyard.close()
    assert TOKEN not in shipyard.log.read_text()


def test_serve_reads_the_repository_url_from_a_file(server: GitHttpServer, tmp_path: Path) -> None:
    url_file = tmp_path / "repo-url"
    url_file.write_text(url_of(server) + "\n")
    url_file.chmod(0o600)
    shipyard = Shipyard("", tmp_path / "state", "--repo-file", str(url_file)).start()
    try:
        assert shipyard.process is not None
        own = Path("/proc") / str(shipyard.process.pid)
        assert TOKEN not in (own / "cmdline").read_bytes().decode(errors="replace")
        assert TOKEN not in (own / "environ").read_bytes().decode(errors="replace")
        listing = shipyard.http.get(shipyard.api("/api/v1/environments")).json()
        assert listing["source"]["repo"] == server.url("remote.git").replace(
            "http://", "http://***@"
        )
        assert [item["branch"] for item in listing["items"]] == ["main"]
        assert server.authorized >= 2
    finally:
        shipyard.close()


def test_a_redirect_to_another_server_gets_no_credentials(
    upstream: Upstream, tmp_path: Path
) -> None:
    # The other server would accept the token, so only the helper's silence keeps the
    # fetch from succeeding there; the repository's own server redirects everything to it.
    seed(upstream, "alpha")
    elsewhere = GitHttpServer(upstream.bare.parent, USER, TOKEN)
    with elsewhere.running():
        redirector = RedirectServer(f"http://127.0.0.1:{elsewhere.port}")
        with redirector.running():
            url = redirector.url("remote.git").replace("http://", f"http://{USER}:{TOKEN}@")
            source = mirror.Mirror(url, tmp_path / "mirror.git")
            with pytest.raises(mirror.SourceUnavailable):
                source.fetch()
            source.close()
        assert redirector.requests >= 1
        assert elsewhere.refused >= 1  # git did reach it, and was asked to authenticate
    assert elsewhere.presented == []
    assert elsewhere.authorized == 0


def _credential_fill(remote: credentials.Remote, asked: str) -> str:
    """What git's credential machinery answers for `asked` with the remote's environment."""
    result = subprocess.run(
        ["git", "credential", "fill"],
        input=f"url={asked}\n\n",
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **remote.git_environment()},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout


@pytest.mark.parametrize(
    "asked",
    [
        "https://other.example:8443/x.git",  # another host
        "https://host.example/x.git",  # same host, another port
        "http://host.example:8443/x.git",  # same host and port, another protocol
        "https://host.example:8443.evil/x.git",  # the repository's host as a prefix
    ],
    ids=["host", "port", "protocol", "prefix"],
)
def test_the_helper_answers_only_the_repositorys_protocol_host_and_port(asked: str) -> None:
    remote = credentials.split(f"https://{USER}:{TOKEN}@host.example:8443/agents.git")
    answered = _credential_fill(remote, "https://host.example:8443/other/path.git")
    assert f"password={TOKEN}" in answered  # the same server, whatever the path
    assert TOKEN not in _credential_fill(remote, asked)


@pytest.mark.parametrize(
    ("url", "clean", "user", "password"),
    [
        ("https://u:p%40ss@host/x.git", "https://host/x.git", "u", "p@ss"),
        ("https://ghp_tok@host:8443/x.git", "https://host:8443/x.git", "ghp_tok", None),
        ("https://host/x.git", "https://host/x.git", None, None),
        ("ssh://git@host/x.git", "ssh://git@host/x.git", None, None),
        ("git@host:x.git", "git@host:x.git", None, None),
        ("/srv/agents", "/srv/agents", None, None),
    ],
    ids=["user-password", "bare-token", "none", "ssh", "scp-like", "path"],
)
def test_urls_split_into_a_clean_url_and_credentials(
    url: str, clean: str, user: str | None, password: str | None
) -> None:
    remote = credentials.split(url)
    assert (remote.url, remote.username, remote.password) == (clean, user, password)
    assert (password or user or "-") not in repr(remote)
