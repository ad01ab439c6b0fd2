"""Fault injection and the request log: how tests make the API misbehave and watch calls.

Faults apply to the next N requests whose method and path match (regexes; method
case-insensitive, full match; path searched): answer a Status 500 (optionally *after*
the request took effect, which is what a lost response looks like to a client), a 429
with `Retry-After`, delay the request by S seconds, or reset the connection without an
answer. Every request (admin endpoints aside) is logged with method, path, query,
content type and status, so a test can assert "zero write calls".
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["error", "throttle", "delay", "reset"]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    content_type: str
    status: int

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def is_watch(self) -> bool:
        return self.params.get("watch", "") in ("true", "1")

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.method} {self.path}{'?' + query if query else ''} -> {self.status}"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    method: re.Pattern[str] | None
    path: re.Pattern[str] | None
    status: int = 500
    retry_after: int = 1
    seconds: float = 0.0
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and not self.method.fullmatch(method):
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass
class _Pending:
    fault: Fault
    remaining: int


def _compile(pattern: str | None, flags: int = 0) -> re.Pattern[str] | None:
    return re.compile(pattern, flags) if pattern else None


@dataclass
class Faults:
    """Pending faults, consumed in the order they were added."""

    _pending: list[_Pending] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault, count: int = 1) -> None:
        with self._lock:
            self._pending.append(_Pending(fault, count))

    def fail(
        self,
        count: int = 1,
        status: int = 500,
        *,
        method: str | None = None,
        path: str | None = None,
        after: bool = False,
    ) -> None:
        """The next `count` matching requests get a Status `status` (after taking effect
        when `after`)."""
        self.add(
            Fault(
                "error", _compile(method, re.IGNORECASE), _compile(path), status=status, after=after
            ),
            count,
        )

    def throttle(
        self,
        count: int = 1,
        retry_after: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next `count` matching requests get 429 Too Many Requests + Retry-After."""
        self.add(
            Fault(
                "throttle",
                _compile(method, re.IGNORECASE),
                _compile(path),
                status=429,
                retry_after=retry_after,
            ),
            count,
        )

    def delay(
        self, seconds: float, count: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """The next `count` matching requests are answered `seconds` late."""
        self.add(
            Fault("delay", _compile(method, re.IGNORECASE), _compile(path), seconds=seconds), count
        )

    def reset(self, count: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """The next `count` matching requests get their connection closed, no answer."""
        self.add(Fault("reset", _compile(method, re.IGNORECASE), _compile(path)), count)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(p.remaining for p in self._pending)

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for entry in self._pending:
                if entry.fault.matches(method, path):
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._pending.remove(entry)
                    return entry.fault
        return None


@dataclass
class RequestLog:
    _records: list[RequestRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def writes(self) -> list[RequestRecord]:
        return [r for r in self.all() if r.is_write]

    def matching(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Records whose method equals `method` and whose path matches the regex `path`."""
        return [
            r
            for r in self.all()
            if (method is None or r.method == method.upper())
            and (path is None or re.search(path, r.path))
        ]
