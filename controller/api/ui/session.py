"""Who is looking at the dashboard, and whether a form post really came from it.

The token a person signs in with lives in a cookie marked HttpOnly (no script reads it)
and SameSite=Strict (no other site's page sends it). Every form carries a CSRF token:
an HMAC of this browser's session cookie under a key that lives only in this process,
checked on every post. A restart therefore asks for a fresh page before the next action,
never for a fresh sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from controller.api import auth

TOKEN_COOKIE = "shipyard_token"  # noqa: S105 (the cookie's name)
SESSION_COOKIE = "shipyard_session"
COOKIE_PATH = "/ui"


@dataclass(frozen=True)
class Viewer:
    """One request's reader: its scope (None: must sign in) and its session's CSRF token."""

    scope: str | None
    session: str
    csrf: str
    new_session: bool
    signed_in: bool

    @property
    def may_write(self) -> bool:
        return self.scope == "write"


class Sessions:
    def __init__(self, tokens: auth.Tokens) -> None:
        self.tokens = tokens
        self._key = secrets.token_bytes(32)

    def viewer(self, request: Request) -> Viewer:
        session = request.cookies.get(SESSION_COOKIE, "")
        new_session = not _well_formed(session)
        if new_session:
            session = secrets.token_urlsafe(32)
        token = request.cookies.get(TOKEN_COOKIE, "")
        if not self.tokens.enabled:
            scope: str | None = "write"  # open, as the API is without tokens
        else:
            scope = self.tokens.scope_of(token) if token else None
        return Viewer(
            scope=scope,
            session=session,
            csrf=self._csrf_for(session),
            new_session=new_session,
            signed_in=self.tokens.enabled and scope is not None,
        )

    def scope_of(self, token: str) -> str | None:
        return self.tokens.scope_of(token) if token else None

    def genuine(self, request: Request, viewer: Viewer, form_csrf: str) -> bool:
        """Whether a post came from one of our own forms in this browser's session."""
        if viewer.new_session or not form_csrf:
            return False
        if not _same_origin(request):
            return False
        return hmac.compare_digest(viewer.csrf.encode(), form_csrf.encode())

    def _csrf_for(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()


def remember_session(response: Response, request: Request, viewer: Viewer) -> None:
    if viewer.new_session:
        _set(response, request, SESSION_COOKIE, viewer.session)


def sign_in(response: Response, request: Request, token: str) -> None:
    _set(response, request, TOKEN_COOKIE, token)


def sign_out(response: Response) -> None:
    response.delete_cookie(TOKEN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def _set(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _well_formed(session: str) -> bool:
    return 32 <= len(session) <= 64 and session.replace("-", "").replace("_", "").isalnum()


def _same_origin(request: Request) -> bool:
    """A browser names the page a post comes from; when it does, it must be ours."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # an older browser or a script: the CSRF token alone decides
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host
