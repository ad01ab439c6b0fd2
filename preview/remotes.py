"""Which forge repository a git remote URL names: one parser for every forge.

GitHub and Gitea name a repository `owner/name`; GitLab allows any depth of groups
(`group/sub/name`). Both come from the same URL forms git accepts —
`https://host/path(.git)`, `ssh://[user@]host[:port]/path` and scp-like
`[user@]host:path` — while local paths and `file://` URLs name no forge repository.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL_SCHEMES = frozenset({"http", "https", "ssh", "git", "git+ssh", "ssh+git"})
# git's scp-like syntax: `[user@]host:path`, where the host has no slash.
_SCP_LIKE = re.compile(r"(?:[^@/\s]+@)?(?P<host>[^@/:\s]{2,}):(?P<path>[^\s]+)")
_SEGMENT = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")


def path_segments(url: str) -> list[str] | None:
    """The path of a forge remote URL as segments, `.git` dropped; None for local paths,
    `file://`, unknown schemes and URLs with a query or fragment."""
    url = url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return None
        if parts.scheme.lower() not in _URL_SCHEMES or not host or parts.query or parts.fragment:
            return None
        path = parts.path
    else:
        match = _SCP_LIKE.fullmatch(url)
        if match is None:
            return None
        path = match["path"]
    segments = path.strip("/").removesuffix(".git").split("/")
    return segments if all(segments) else None


def project_path_from_remote(url: str) -> str | None:
    """`group/subgroup/name` of a remote URL (GitLab allows any depth), else None."""
    segments = path_segments(url)
    if segments is None or len(segments) < 2:
        return None
    if not all(_SEGMENT.fullmatch(s) and s not in {".", ".."} for s in segments):
        return None
    return "/".join(segments)
