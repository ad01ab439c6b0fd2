"""Names for environments and preview hosts, derived from branch names.

Branch names are arbitrary user text, but environment names end up in Kubernetes
labels, DNS host labels and URLs. Every rule that turns the one into the other lives
here, so that the controller, the router and the PR feedback agree on every name.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import string

PRODUCTION = "production"
PREVIEW_PREFIX = "preview-"
# The agent schema caps names at 24 characters so that `{agent}--{environment}`
# always fits in a single DNS label.
MAX_AGENT_NAME = 24
MAX_LABEL = 63
MAX_ENVIRONMENT = MAX_LABEL - MAX_AGENT_NAME - len("--")
MAX_SLUG = MAX_ENVIRONMENT - len(PREVIEW_PREFIX)

DEFAULT_LOCAL_URL_TEMPLATE = "http://{agent}--{env}.localhost:{port}/"

_HASH_LENGTH = 8
_SEPARATOR = "--"
# Stands in for the readable part when nothing of the branch survives cleaning, so
# that a hashed slug always contains the separator (see `branch_slug`).
_EMPTY_CUT = "x"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_URL_FIELDS = frozenset({"agent", "env", "environment", "port"})


def branch_slug(branch: str) -> str:
    """Return a DNS-safe slug of at most `MAX_SLUG` characters for `branch`.

    The branch is lowercased and every character outside `[a-z0-9]` (non-ASCII letters
    included; nothing is transliterated) becomes `-`, runs of `-` are collapsed and
    `-` is trimmed from both ends. If that leaves the branch name exactly as it was and
    it fits, it is the slug. Otherwise the slug is `{cut}--{hash}`: `cut` is the
    cleaned text shortened to fit (`x` if nothing is left) and `hash` is 8 base32
    characters of the SHA-256 of the full branch name.

    Two different branches never get the same slug:

    - an untouched slug equals its branch name, so two untouched slugs differ;
    - an untouched slug never contains `--` (dashes were collapsed), while a hashed
      slug always does, so an untouched slug never equals a hashed one;
    - two hashed slugs carry hashes of their different branch names (40 bits; a
      collision is not a practical concern).
    """
    cleaned = _NOT_SLUG.sub("-", branch.lower()).strip("-")
    if cleaned == branch and 0 < len(cleaned) <= MAX_SLUG:
        return cleaned
    # surrogatepass, unlike surrogateescape, encodes every str (lone high surrogates
    # too) and never maps two different strings to the same bytes.
    digest = hashlib.sha256(branch.encode("utf-8", "surrogatepass")).digest()
    suffix = base64.b32encode(digest).decode("ascii").lower()[:_HASH_LENGTH]
    room = MAX_SLUG - len(_SEPARATOR) - _HASH_LENGTH
    cut = cleaned[:room].rstrip("-") or _EMPTY_CUT
    return f"{cut}{_SEPARATOR}{suffix}"


def environment_name(branch: str, default_branch: str) -> str:
    """Name of the environment a branch deploys to: production or its own preview."""
    if branch == default_branch:
        return PRODUCTION
    return PREVIEW_PREFIX + branch_slug(branch)


def is_dns_label(text: str) -> bool:
    """Whether `text` is an RFC 1123 label: lowercase alphanumerics and inner dashes."""
    return len(text) <= MAX_LABEL and _DNS_LABEL.fullmatch(text) is not None


def host_label(agent: str, environment: str) -> str:
    """The single DNS label that addresses one agent in one environment.

    Exact lookups stay unambiguous even though agent names may contain `--`: an
    environment name is `production` or `preview-{slug}`, and neither can be the tail
    of another environment name after a `--`.
    """
    label = f"{agent}{_SEPARATOR}{environment}"
    if not is_dns_label(label):
        raise ValueError(
            f"host label {label!r} is not a DNS label of at most {MAX_LABEL} characters"
        )
    return label


def _placeholders(template: str) -> set[str]:
    # Format specs may hold nested placeholders (`{port:{width}}`); those count too.
    fields: set[str] = set()
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is not None:
            fields.add(field)
        if spec:
            fields |= _placeholders(spec)
    return fields


# Asked for every agent of an environment whenever its status is refreshed (1,000 agents:
# ~7 ms of checks per refresh); the answer depends on nothing else.
@functools.lru_cache(maxsize=1 << 16)
def preview_url(template: str, agent: str, environment: str, port: int | None = None) -> str:
    """Fill a preview URL template with `{agent}`, `{env}` (or `{environment}`), `{port}`.

    Unknown placeholders are rejected rather than left in place, so a typo in the
    configured template fails loudly instead of producing a broken link.
    """
    for name, value in (("agent", agent), ("environment", environment)):
        if not is_dns_label(value):
            raise ValueError(f"{name} {value!r} is not a DNS label")
    fields = _placeholders(template)
    unknown = fields - _URL_FIELDS
    if unknown:
        raise ValueError(
            f"unknown placeholders in URL template {template!r}: "
            + ", ".join(repr(f"{{{field}}}") for field in sorted(unknown))
        )
    if "port" in fields and port is None:
        raise ValueError(f"URL template {template!r} needs a port")
    return template.format(agent=agent, env=environment, environment=environment, port=port)
