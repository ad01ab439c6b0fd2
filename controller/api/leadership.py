"""Whether this replica acts, and if not, why: what `/readyz`, the API and the CLI report.

Only the replica holding the Lease reconciles; any other one answers the API with empty
tables. An empty table with no word of why looks like "nothing is deployed", so while
the controller waits for leadership every `/api/v1` answer carries a warning header
(`Warning: 299 - "waiting for leadership: held by <identity>"`, as the Kubernetes API
sends its warnings), the environment list carries it in `warnings`, and `/readyz`
answers 503 with it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.targets.kubernetes.leader import LeaderElection

WARNING_CODE = 299  # RFC 7234's "miscellaneous persistent warning", as Kubernetes uses


class Standby:
    """Follows a leader election once there is one; without one the controller acts."""

    def __init__(self) -> None:
        self._election: LeaderElection | None = None

    def follow(self, election: LeaderElection) -> None:
        self._election = election

    def message(self) -> str | None:
        """The "waiting for leadership: <why>" message, or None while this replica leads."""
        election = self._election
        if election is None or election.waiting is None:
            return None
        return f"waiting for leadership: {election.waiting}"


def warning_header(message: str) -> str:
    """`message` as a Warning header value: ASCII, its quotes and backslashes escaped."""
    text = message.encode("ascii", "replace").decode("ascii")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'{WARNING_CODE} - "{text}"'


class WarningHeader:
    """ASGI middleware: while waiting for leadership, `/api/` answers carry the warning."""

    def __init__(self, app: ASGIApp, standby: Standby) -> None:
        self.app = app
        self.standby = standby

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        waiting = self.standby.message() if scope["type"] == "http" else None
        if waiting is None or not str(scope.get("path", "")).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        header = (b"warning", warning_header(waiting).encode("ascii"))

        async def send_warned(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_warned)
