"""Eval results per (agent, version, suite digest), in the controller's SQLite file.

A version's answers depend on its content only, so a result is keyed by the version and
the suite's digest, not by environment: production's version evaluated once serves every
preview compared with it, and an unchanged version is never evaluated twice.

A connection of its own on the same database file (WAL mode lets it write beside the
main store), used from the eval runner's thread and the API's readers.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eval_results (
    agent TEXT NOT NULL,
    version TEXT NOT NULL,
    suite TEXT NOT NULL,
    digest TEXT NOT NULL,
    case_name TEXT NOT NULL,
    position INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    reason TEXT NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (agent, version, suite, digest, case_name)
);
"""


@dataclass(frozen=True)
class CaseResult:
    """How one case went on one version: passed or not, how fast, and why not."""

    suite: str
    case: str
    passed: bool
    latency_ms: float
    reason: str


class EvalResults:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def has(self, agent: str, version: str, suite: str, digest: str) -> bool:
        """Whether this version was already evaluated by this exact suite content."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM eval_results WHERE agent=? AND version=? AND suite=? AND digest=?"
                " LIMIT 1",
                (agent, version, suite, digest),
            ).fetchone()
        return row is not None

    def save(self, agent: str, version: str, digest: str, results: list[CaseResult]) -> None:
        """Store a suite's results on a version at once: never half a suite."""
        now = time.time()
        rows = [
            (
                agent,
                version,
                result.suite,
                digest,
                result.case,
                position,
                int(result.passed),
                result.latency_ms,
                result.reason,
                now,
            )
            for position, result in enumerate(results)
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO eval_results VALUES (?,?,?,?,?,?,?,?,?,?)", rows
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def results(
        self, agent: str, version: str, digests: dict[str, str] | None = None
    ) -> list[CaseResult]:
        """A version's case results; with `digests` (suite → digest), only those contents."""
        with self._lock:
            rows = self._db.execute(
                "SELECT suite, digest, case_name, passed, latency_ms, reason FROM eval_results"
                " WHERE agent=? AND version=? ORDER BY suite, time DESC, position",
                (agent, version),
            ).fetchall()
        found: list[CaseResult] = []
        newest: dict[str, str] = {}
        for suite, digest, case, passed, latency, reason in rows:
            wanted = digests.get(suite) if digests is not None else newest.setdefault(suite, digest)
            if digest != wanted:
                continue
            found.append(CaseResult(suite, case, bool(passed), float(latency), reason))
        return found
