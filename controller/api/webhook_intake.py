"""What a webhook delivery may cost before it is known to be authentic.

Anyone who can reach `/hooks/*` can open connections, declare large bodies and send them
slowly. Before the signature is checked, a delivery gets only what this module grants:

- one of `max_pending` places among deliveries being read, and bytes out of a shared
  `max_buffered` budget (its declared size up front; chunked bodies as they grow);
- `body_timeout` seconds for the whole body to arrive, else 408;
- at most `max_body` bytes, refused with 413 from the declared length or as soon as
  the streamed size passes it.

When places or bytes run out, a newcomer takes the place of the oldest delivery still
being read if that one has taken longer than `eviction_grace` (a real forge sends its
body in milliseconds; a stalled upload is what holds a place that long), otherwise it
is refused with 503 and Retry-After. So a flood of stalled uploads cannot keep a
legitimate delivery out, and memory stays bounded by the budget whatever arrives.

Refusals carry `Connection: close`, so a refused client's connection (and its file
descriptor) goes away instead of trickling an unread body into the server. Each refusal
is logged as one line, rate-limited so that a flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

MiB = 1024 * 1024

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


@dataclass(frozen=True)
class IntakeLimits:
    max_body: int = 5 * MiB
    max_pending: int = 64
    max_buffered: int = 32 * MiB
    body_timeout: float = 10.0
    eviction_grace: float = 2.0
    retry_after: int = 5


class Refused(Exception):
    """A delivery answered with `status` without being processed."""

    def __init__(
        self, status: int, message: str, result: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.result = result  # the metrics label
        self.retry_after = retry_after


class ClientGone(Exception):
    """The sender disconnected before its body arrived: nothing to answer."""


class BodyCheck(Protocol):
    """Sees every chunk as it arrives (an incremental HMAC, or nothing)."""

    def update(self, chunk: bytes) -> None: ...


class Admission:
    """Places and buffered bytes of the deliveries being read, shared by all providers.

    Runs on the event loop only: no locks, and no await between a check and its update.
    """

    def __init__(self, limits: IntakeLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._pending: dict[int, Pending] = {}  # insertion order is admission order
        self.buffered = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def saturated(self) -> bool:
        """Every place is taken by a delivery still within its grace: a newcomer would be
        refused whatever it declares."""
        if len(self._pending) < self.limits.max_pending:
            return False
        oldest = next(iter(self._pending.values()))
        return self.clock() - oldest.started < self.limits.eviction_grace

    def admit(self, declared: int) -> Pending:
        """A place for a delivery declaring `declared` bytes, or `Refused` (503)."""
        while (
            len(self._pending) >= self.limits.max_pending
            or self.buffered + declared > self.limits.max_buffered
        ):
            if not self._evict_oldest(keep=None):
                raise self.busy()
        pending = Pending(self, declared, self.clock())
        self._pending[id(pending)] = pending
        self.buffered += declared
        return pending

    def _reserve_more(self, pending: Pending, extra: int) -> None:
        while self.buffered + extra > self.limits.max_buffered:
            if not self._evict_oldest(keep=pending):
                raise self.busy()
        self.buffered += extra

    def _evict_oldest(self, keep: Pending | None) -> bool:
        now = self.clock()
        for candidate in self._pending.values():
            if candidate is keep:
                continue
            if now - candidate.started < self.limits.eviction_grace:
                return False  # everything after it is younger still
            candidate.evict()
            return True
        return False

    def _release(self, pending: Pending) -> None:
        if self._pending.pop(id(pending), None) is not None:
            self.buffered -= pending.reserved

    def busy(self) -> Refused:
        return Refused(
            503,
            "too many webhook deliveries are being received; retry later",
            "busy",
            self.limits.retry_after,
        )


class Pending:
    """One delivery's place while its body is read."""

    def __init__(self, admission: Admission, reserved: int, started: float) -> None:
        self.admission = admission
        self.reserved = reserved
        self.started = started
        self.evicted = False
        self._reader: asyncio.Task[bytes] | None = None

    def hold(self, size: int) -> None:
        """The body read so far is `size` bytes: reserve any excess over the reservation."""
        if size > self.reserved:
            self.admission._reserve_more(self, size - self.reserved)
            self.reserved = size

    def evict(self) -> None:
        self.evicted = True
        self.release()
        if self._reader is not None:
            self._reader.cancel()

    def release(self) -> None:
        self.admission._release(self)

    async def read(self, receive: Receive, check: BodyCheck) -> bytes:
        """The whole body, within the time limit, seen chunk by chunk by `check`."""
        limits = self.admission.limits
        reader = asyncio.ensure_future(_read_body(receive, self, check, limits.max_body))
        self._reader = reader
        try:
            done, _ = await asyncio.wait({reader}, timeout=limits.body_timeout)
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.wait({reader})
        if not done:
            raise Refused(
                408, f"the body did not arrive within {limits.body_timeout:g}s", "timeout"
            )
        if reader.cancelled():
            raise Refused(
                503,
                "the body arrived too slowly while other deliveries were waiting; retry later",
                "busy",
                limits.retry_after,
            )
        return reader.result()


async def _read_body(receive: Receive, pending: Pending, check: BodyCheck, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if len(body) + len(chunk) > limit:
            raise Refused(413, f"body is over the limit of {limit} bytes", "too_large")
        pending.hold(len(body) + len(chunk))
        check.update(chunk)
        body += chunk
        if not message.get("more_body", False):
            return bytes(body)


class RefusalLog:
    """One warning per refusal, at most `burst` at once and `rate` a second after that.

    Lines over the rate are counted, and the next line that may be written says how many
    were left out, so the log stays readable during a flood and nothing is silently lost.
    """

    def __init__(
        self,
        logger: logging.Logger,
        rate: float = 1.0,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._left_out = 0

    def refused(self, provider: str, client: str, status: int, message: str) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            self._left_out += 1
            return
        self._tokens -= 1
        left_out, self._left_out = self._left_out, 0
        more = f" ({left_out} more refusals not logged)" if left_out else ""
        self.logger.warning(
            "%s webhook from %s refused with %d: %s%s", provider, client, status, message, more
        )
