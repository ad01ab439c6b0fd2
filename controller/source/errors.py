"""Errors of the git source, and the redaction that keeps credentials out of them.

Remote URLs often carry a token (`https://user:token@host/repo.git`); error messages end
up in logs, events and PR comments, so every message built here names the remote only
through `redact`.
"""

from __future__ import annotations

import re

from controller.errors import ShipyardError

# Everything between `scheme://` and the last `@` before the host is user information:
# a user name, a password or a bare token. An scp-like `git@host:repo` has no secret.
_USERINFO = re.compile(r"(?<=://)[^/\s]+@")


def redact(text: str) -> str:
    """`text` with the user information of every URL in it replaced by `***`."""
    return _USERINFO.sub("***@", text)


class SourceUnavailable(ShipyardError):
    """The remote could not be fetched; the mirror keeps serving what it fetched last.

    A transient condition for the reconciler: retry with backoff.
    """

    def __init__(self, remote: str, reason: str) -> None:
        self.remote = redact(remote)
        self.reason = redact(reason)
        super().__init__(f"cannot fetch {self.remote}: {self.reason}")


class UnknownCommit(ShipyardError):
    """The mirror holds no commit by that name (not fetched yet, or never existed)."""

    def __init__(self, sha: str) -> None:
        self.sha = sha
        super().__init__(f"commit {sha!r} is not in the mirror")
