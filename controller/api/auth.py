"""Bearer-token auth for the API, with a read scope and a write scope.

With no tokens configured the API is open, which `shipyard serve` allows only on a
loopback address (or with --insecure). A write token also reads. Tokens are compared
in constant time and never echoed back.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request


@dataclass(frozen=True)
class Tokens:
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        return bool(self.read or self.write)

    def scope_of(self, token: str) -> str | None:
        # Check every token, so timing says nothing about which one nearly matched.
        scope = None
        for candidate in self.write:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                scope = "write"
        for candidate in self.read:
            if hmac.compare_digest(candidate.encode(), token.encode()) and scope is None:
                scope = "read"
        return scope


def require(tokens: Tokens, scope: str, request: Request) -> None:
    """Raise 401 (no or unknown token) or 403 (read token on a write) unless allowed."""
    if not tokens.enabled:
        return
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status_code=401,
            detail="missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    granted = tokens.scope_of(token.strip())
    if granted is None:
        raise HTTPException(
            status_code=401, detail="unknown token", headers={"WWW-Authenticate": "Bearer"}
        )
    if scope == "write" and granted != "write":
        raise HTTPException(status_code=403, detail="this token may read but not write")
