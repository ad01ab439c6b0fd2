"""Credentials in the repository URL, kept off command lines and out of the mirror's config.

A URL such as `https://user:token@host/agents.git` works for git, but git puts the URL it
fetches on the command line of its remote helper (`git-remote-https origin URL`), where
any user of the machine can read it (`ps`), and a remote configured with it keeps the
token in plain text under the state directory. So the mirror configures the URL without
its user information and hands the user name and password to git through a credential
helper that reads them from the environment of that one git process. The helper's
command line holds no secret, and an empty `credential.helper` first clears the user's
own helpers, so git never stores the token anywhere (`credential-store`, a keychain).

git asks its helpers for every server that challenges it, not only the repository's: a
redirect, or a submodule or LFS URL naming another host, would be handed the token too.
The helper therefore reads what git asks for (`protocol=` and `host=` lines on stdin,
the host with its port when the URL names one) and answers only when both are exactly
those of the repository URL it was given; for anything else it says nothing, and git
goes on without credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

USERNAME_VARIABLE = "SHIPYARD_GIT_USERNAME"
PASSWORD_VARIABLE = "SHIPYARD_GIT_PASSWORD"  # noqa: S105 - a variable name, not a password
PROTOCOL_VARIABLE = "SHIPYARD_GIT_PROTOCOL"
HOST_VARIABLE = "SHIPYARD_GIT_HOST"
_HELPER = (
    '!f() { test "$1" = get || exit 0; protocol=; host=; '
    'while IFS= read -r line && test -n "$line"; do case "$line" in '
    'protocol=*) protocol="${line#protocol=}";; host=*) host="${line#host=}";; esac; done; '
    f'test "$protocol" = "${PROTOCOL_VARIABLE}" && test "$host" = "${HOST_VARIABLE}" || exit 0; '
    f'printf "username=%s\\npassword=%s\\n" "${USERNAME_VARIABLE}" "${PASSWORD_VARIABLE}"; '
    "}; f"
)


@dataclass(frozen=True)
class Remote:
    """A remote URL with its user information taken out (`url` carries none)."""

    url: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    def secrets(self) -> tuple[str, ...]:
        """The parts worth hiding: the password, or a bare token given as the user name."""
        if self.password:
            return (self.password,)
        return (self.username,) if self.username else ()

    def git_environment(self) -> dict[str, str]:
        """Variables for the git process that talks to the remote (none without credentials).

        Configuration through `GIT_CONFIG_COUNT` (git 2.31+) instead of `-c`, so not even
        the helper shows on a command line.
        """
        if not self.has_credentials:
            return {}
        parts = urlsplit(self.url)
        # After any entries the controller's own environment already configures this way.
        inherited = os.environ.get("GIT_CONFIG_COUNT", "")
        first = int(inherited) if inherited.isdigit() else 0
        return {
            "GIT_CONFIG_COUNT": str(first + 2),
            f"GIT_CONFIG_KEY_{first}": "credential.helper",
            f"GIT_CONFIG_VALUE_{first}": "",
            f"GIT_CONFIG_KEY_{first + 1}": "credential.helper",
            f"GIT_CONFIG_VALUE_{first + 1}": _HELPER,
            USERNAME_VARIABLE: self.username or "",
            PASSWORD_VARIABLE: self.password or "",
            # The one server these credentials are for, as git names it to helpers.
            PROTOCOL_VARIABLE: parts.scheme.lower(),
            HOST_VARIABLE: parts.netloc,
        }


def split(url: str) -> Remote:
    """`https://user:token@host/x.git` → `https://host/x.git` plus user and token.

    Only HTTP(S) URLs go through credential helpers; an `ssh://git@host/x` user name is
    no secret, and an scp-like `git@host:repo` or a local path is returned as it is.
    """
    if not url.lower().startswith(("http://", "https://")):
        return Remote(url)
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return Remote(url)
    host = parts.netloc.rpartition("@")[2]
    return Remote(
        urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)),
        username=unquote(parts.username or ""),
        password=unquote(parts.password) if parts.password is not None else None,
    )
