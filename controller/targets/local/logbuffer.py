"""Recent output of one agent process, kept in memory for `logs` and `logs -f`.

Agents' output may contain anything, secrets included, so it never goes to disk or to
the controller's own log: it lives in a bounded ring buffer per process and is dropped
with it. Readers either take a snapshot (`lines`) or follow new lines as they arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

DEFAULT_CAPACITY = 5000


@dataclass(frozen=True)
class LogLine:
    """One line of output: when it was read, from which stream, and its text."""

    timestamp: float
    stream: str  # "stdout", "stderr", or "shipyard" for the supervisor's own notes
    line: str


class LogBuffer:
    """A bounded, followable buffer of log lines; the oldest lines fall off first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: deque[LogLine] = deque(maxlen=capacity)
        # Number of lines ever appended: gives every line a sequence number that survives
        # eviction, so followers resume exactly where they were without timestamps ties.
        self._appended = 0
        self._closed = False
        self._changed = asyncio.Event()
        self._waiting = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def closed(self) -> bool:
        """True once the process is gone for good; followers then end."""
        return self._closed

    def append(self, stream: str, line: str) -> LogLine:
        entry = LogLine(time.time(), stream, line)
        self._entries.append(entry)
        self._appended += 1
        self._notify()
        return entry

    def close(self) -> None:
        self._closed = True
        self._notify()

    def lines(self, since: float | None = None) -> list[LogLine]:
        """The buffered lines, oldest first; only those at or after `since` if given."""
        return [entry for entry in self._entries if since is None or entry.timestamp >= since]

    async def follow(self, since: float | None = None) -> AsyncIterator[LogLine]:
        """The buffered lines (from `since`), then new ones as they come, until closed.

        A follower slower than the producer by more than the capacity skips what fell off.
        """
        cursor = self._appended - len(self._entries)
        for entry in self._entries:
            if since is None or entry.timestamp >= since:
                break
            cursor += 1
        while True:
            fresh = self._after(cursor)
            cursor = self._appended
            for entry in fresh:
                yield entry
            if cursor < self._appended:
                continue
            if self._closed:
                return
            changed = self._changed
            self._waiting += 1
            await changed.wait()

    def _after(self, cursor: int) -> list[LogLine]:
        # Walk from the newest end: followers are usually a few lines behind.
        count = min(self._appended - cursor, len(self._entries))
        newest_first = list(itertools.islice(reversed(self._entries), count))
        newest_first.reverse()
        return newest_first

    def _notify(self) -> None:
        # A fresh Event per wake-up lets every follower see it without anyone clearing it;
        # only pay for one when someone is actually waiting.
        if self._waiting:
            self._changed.set()
            self._changed = asyncio.Event()
            self._waiting = 0
