"""Recorded requests and responses, for `shipyard replay`, in the controller's SQLite file.

Agents that opt in (`spec.observability.record`) have requests through the router kept
here with the response that answered them, keyed by (agent, environment, version) like
every other per-version record. Bodies may hold personal data, so this table is the only
place they go: never a log line, never a metric label. It is bounded three ways: per
agent and environment by count and by age (the manifest's retention), and in total by
size, oldest first.

A connection of its own on the same database file (WAL mode lets it write beside the
main store), used from the recorder's writer thread and the API's readers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_TOTAL_BYTES = 256 * 1024 * 1024
LIST_LIMIT = 1000
_CACHE_KIB = 16 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recorded_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    agent TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    request_headers TEXT NOT NULL,
    request_body BLOB NOT NULL,
    request_bytes INTEGER NOT NULL,
    status INTEGER NOT NULL,
    response_headers TEXT NOT NULL,
    response_body BLOB NOT NULL,
    response_bytes INTEGER NOT NULL,
    latency REAL NOT NULL,
    complete INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recorded_by_agent
    ON recorded_requests (agent, environment, id);
CREATE INDEX IF NOT EXISTS recorded_by_time ON recorded_requests (time);
"""

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Recorded:
    """One request through the router and the response that answered it.

    `request_bytes` / `response_bytes` are the full sizes; the bodies hold at most the
    manifest's `maxBodyBytes` of them (`*_truncated` says when they were cut). `complete`
    is False when the exchange broke off (the client left, the agent went away).
    """

    time: float
    agent: str
    environment: str
    version: str
    trace_id: str
    method: str
    path: str
    query: str
    request_headers: Headers
    request_body: bytes
    request_bytes: int
    status: int
    response_headers: Headers
    response_body: bytes
    response_bytes: int
    latency: float
    complete: bool
    id: int = 0

    @property
    def request_truncated(self) -> bool:
        return len(self.request_body) < self.request_bytes

    @property
    def response_truncated(self) -> bool:
        return len(self.response_body) < self.response_bytes


@dataclass(frozen=True)
class Retention:
    max_requests: int
    max_age_seconds: float


class Recordings:
    def __init__(
        self,
        path: Path,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        *,
        enforce_every_seconds: float = 0.0,
    ) -> None:
        """`enforce_every_seconds`: apply retention and the size cap on a write at most
        this often (they cost more than the inserts); 0 applies them on every write."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_total_bytes = max_total_bytes
        self._enforce_every = enforce_every_seconds
        self._enforced_at: float | None = None
        self._pending_retention: dict[tuple[str, str], Retention] = {}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Inserts and the retention deletes touch the same recent pages again and again:
        # with SQLite's default 2 MB cache a row cost ~24 µs of CPU (batches of 100,
        # retention applied on each), with this ~16 µs.
        self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, records: Sequence[Recorded], retention: dict[tuple[str, str], Retention]) -> None:
        """Store `records`, then apply retention to their agents and the total size cap."""
        self.add_rows([_row(record) for record in records], retention)

    def add_rows(
        self, rows: Sequence[tuple[object, ...]], retention: dict[tuple[str, str], Retention]
    ) -> None:
        """`add` for rows already in `row`'s shape (the recorder's writer makes them
        straight from what it queued: no `Recorded` object per request)."""
        if not rows:
            return
        now = time.time()
        self._pending_retention.update(retention)
        due = (
            self._enforced_at is None or time.monotonic() - self._enforced_at >= self._enforce_every
        )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO recorded_requests (time, agent, environment, version, "
                    "trace_id, method, path, query, request_headers, request_body, "
                    "request_bytes, status, response_headers, response_body, response_bytes, "
                    "latency, complete, size) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if due:
                    for (agent, environment), kept in self._pending_retention.items():
                        self._retain(agent, environment, kept, now)
                    self._cap()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if due:
            self._pending_retention.clear()
            self._enforced_at = time.monotonic()

    def list(
        self,
        agent: str,
        environment: str,
        *,
        since: float | None = None,
        last: int | None = None,
    ) -> list[Recorded]:
        """Recorded requests of the agent in the environment, oldest first: the newest
        `last` of them (at most 1000), only those at or after `since` if given."""
        limit = min(last or LIST_LIMIT, LIST_LIMIT)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM (SELECT id, time, agent, environment, version, trace_id, method, "
                "path, query, request_headers, request_body, request_bytes, status, "
                "response_headers, response_body, response_bytes, latency, complete "
                "FROM recorded_requests WHERE agent=? AND environment=? AND time>=? "
                "ORDER BY id DESC LIMIT ?) ORDER BY id",
                (agent, environment, since or 0.0, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def total_bytes(self) -> int:
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(size), 0) FROM recorded_requests"
            ).fetchone()
        return int(total)

    def _retain(self, agent: str, environment: str, kept: Retention, now: float) -> None:
        self._db.execute(
            "DELETE FROM recorded_requests WHERE agent=? AND environment=? AND (time<? OR id<="
            "(SELECT id FROM recorded_requests WHERE agent=? AND environment=? "
            "ORDER BY id DESC LIMIT 1 OFFSET ?))",
            (agent, environment, now - kept.max_age_seconds, agent, environment, kept.max_requests),
        )

    def _cap(self) -> None:
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM recorded_requests"
        ).fetchone()
        excess = int(total) - self.max_total_bytes
        if excess <= 0:
            return
        # The oldest rows whose sizes add up to the excess: a running sum, then one delete.
        rows = self._db.execute("SELECT id, size FROM recorded_requests ORDER BY id").fetchall()
        freed, last_id = 0, 0
        for row_id, size in rows:
            freed += size
            last_id = row_id
            if freed >= excess:
                break
        self._db.execute("DELETE FROM recorded_requests WHERE id<=?", (last_id,))


def _row(record: Recorded) -> tuple[object, ...]:
    return row(
        record.time,
        (record.agent, record.environment, record.version),
        (record.trace_id, record.method, record.path, record.query),
        (json.dumps(record.request_headers), record.request_body, record.request_bytes),
        (
            record.status,
            json.dumps(record.response_headers),
            record.response_body,
            record.response_bytes,
        ),
        outcome=(record.latency, record.complete),
    )


def row(
    when: float,
    owner: tuple[str, str, str],
    request: tuple[str, str, str, str],
    request_body: tuple[str, bytes, int],
    response: tuple[int, str, bytes, int],
    *,
    outcome: tuple[float, bool],
) -> tuple[object, ...]:
    """One `recorded_requests` row: time; (agent, environment, version); (trace id,
    method, path, query); (request headers, body, full size); (status, response headers,
    body, full size); (latency, complete). Headers come as the JSON of their (name, value)
    pairs (`json.dumps` of `Headers`, or the recorder's `headers_json`)."""
    request_headers, request_bytes, request_size = request_body
    status, response_headers, response_bytes, response_size = response
    size = len(request_bytes) + len(response_bytes) + 512
    return (
        when,
        *owner,
        *request,
        request_headers,
        request_bytes,
        request_size,
        status,
        response_headers,
        response_bytes,
        response_size,
        *outcome,
        size,
    )


def _record(row: tuple[Any, ...]) -> Recorded:
    (
        row_id,
        when,
        agent,
        environment,
        version,
        trace_id,
        method,
        path,
        query,
        request_headers,
        request_body,
        request_bytes,
        status,
        response_headers,
        response_body,
        response_bytes,
        latency,
        complete,
    ) = row
    return Recorded(
        time=float(when),
        agent=str(agent),
        environment=str(environment),
        version=str(version),
        trace_id=str(trace_id),
        method=str(method),
        path=str(path),
        query=str(query),
        request_headers=_headers(request_headers),
        request_body=bytes(request_body),
        request_bytes=int(request_bytes),
        status=int(status),
        response_headers=_headers(response_headers),
        response_body=bytes(response_body),
        response_bytes=int(response_bytes),
        latency=float(latency),
        complete=bool(complete),
        id=int(row_id),
    )


def _headers(text: object) -> Headers:
    return tuple((str(name), str(value)) for name, value in json.loads(str(text)))
