"""`/api/` requests are authenticated on their headers before any body is read, and small.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, the
token check among them: left alone, anyone who can reach the port could make the
controller hold a body of any size (hundreds of megabytes per connection) before being
told 401. The API's bodies are a reason and a revision number, so this gate, in front
of the routes, answers 401/403 from the `Authorization` header alone and 413 to a body
over `MAX_API_BODY` (declared, or as it streams), each with `Connection: close`; only
then does the route see the body, replayed from what the gate read.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api import auth

MAX_API_BODY = 64 * 1024
_READS = frozenset({"GET", "HEAD"})


class ApiBodyGate:
    """ASGI middleware: token check and size limit for `/api/` before its body is read."""

    def __init__(self, app: ASGIApp, tokens: auth.Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            auth.require(self.tokens, "read" if request.method in _READS else "write", request)
            body = await _small_body(request, receive)
        except HTTPException as refusal:
            headers = {**(refusal.headers or {}), "connection": "close"}
            response = JSONResponse({"detail": refusal.detail}, refusal.status_code, headers)
            await response(scope, receive, send)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _small_body(request: Request, receive: Receive) -> bytes | None:
    """The whole body if the request declares or streams one (413 past the limit)."""
    declared = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if declared is None and not chunked:
        return None
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_API_BODY):
        raise _too_large()
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "client disconnected")
        body += message.get("body", b"")
        if len(body) > MAX_API_BODY:
            raise _too_large()
        if not message.get("more_body", False):
            return bytes(body)


def _too_large() -> HTTPException:
    return HTTPException(413, f"API request bodies are at most {MAX_API_BODY} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: a disconnect, when it comes

    return replayed
