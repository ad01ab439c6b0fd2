"""The store on embedded SQLite under the state directory.

One file, WAL mode, one connection guarded by a lock: the controller is a single process
and every write is small. Writes that could be repeated after a crash are idempotent
(unique keys, upserts), so a controller killed at any point converges on restart
without duplicate records.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.store.errors import unwritable
from controller.store.records import (
    Deployed,
    EnvironmentRecord,
    Event,
    Pin,
    Revision,
    Rollout,
    RolloutResult,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployed (
    agent TEXT NOT NULL, environment TEXT NOT NULL, version TEXT NOT NULL,
    commit_sha TEXT NOT NULL, branch TEXT NOT NULL, since REAL NOT NULL,
    PRIMARY KEY (agent, environment)
);
CREATE TABLE IF NOT EXISTS revisions (
    number INTEGER NOT NULL, agent TEXT NOT NULL, environment TEXT NOT NULL,
    version TEXT NOT NULL, commit_sha TEXT NOT NULL, branch TEXT NOT NULL,
    author TEXT NOT NULL, message TEXT NOT NULL, created_at REAL NOT NULL,
    manifest_json TEXT NOT NULL,
    PRIMARY KEY (agent, environment, number),
    UNIQUE (agent, environment, version, commit_sha)
);
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, environment TEXT NOT NULL,
    from_version TEXT, to_version TEXT NOT NULL, commit_sha TEXT NOT NULL,
    author TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    result TEXT NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS rollouts_by_agent ON rollouts (agent, environment, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, type TEXT NOT NULL,
    reason TEXT NOT NULL, environment TEXT NOT NULL, agent TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    provider TEXT NOT NULL, id TEXT NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (provider, id)
);
CREATE TABLE IF NOT EXISTS pins (
    environment TEXT NOT NULL, agent TEXT NOT NULL, version TEXT NOT NULL,
    pinned_from TEXT, actor TEXT NOT NULL, reason TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (environment, agent)
);
CREATE TABLE IF NOT EXISTS environments (
    name TEXT PRIMARY KEY, branch TEXT NOT NULL, commit_sha TEXT NOT NULL,
    last_push_at REAL NOT NULL, retired_commit TEXT
);
"""

MAX_EVENTS = 10_000
MAX_DELIVERIES = 10_000


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite may already have rolled back (it does on a full disk).
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as error:
                translated = unwritable(error)
                if translated is None:
                    raise
                raise translated from error

    def _query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # What runs where -------------------------------------------------------------------

    def set_deployed(self, record: Deployed) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO deployed VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent, environment) "
                "DO UPDATE SET version=excluded.version, commit_sha=excluded.commit_sha, "
                "branch=excluded.branch, since=excluded.since",
                (
                    record.agent,
                    record.environment,
                    record.version,
                    record.commit,
                    record.branch,
                    record.since,
                ),
            )

    def clear_deployed(self, environment: str, agent: str | None = None) -> None:
        with self._transaction() as db:
            if agent is None:
                db.execute("DELETE FROM deployed WHERE environment = ?", (environment,))
            else:
                db.execute(
                    "DELETE FROM deployed WHERE environment = ? AND agent = ?", (environment, agent)
                )

    def deployed(self, environment: str | None = None) -> list[Deployed]:
        sql = "SELECT agent, environment, version, commit_sha, branch, since FROM deployed"
        rows = (
            self._query(sql + " WHERE environment = ? ORDER BY agent", environment)
            if environment is not None
            else self._query(sql + " ORDER BY environment, agent")
        )
        return [Deployed(*row) for row in rows]  # type: ignore[arg-type]

    # Revisions -------------------------------------------------------------------------

    def record_revision(
        self,
        *,
        agent: str,
        environment: str,
        version: str,
        commit: str,
        branch: str,
        author: str,
        message: str,
        manifest_json: str,
    ) -> Revision:
        """The revision for (version, commit), created once however often this is called."""
        with self._transaction() as db:
            existing = db.execute(
                "SELECT * FROM revisions WHERE agent=? AND environment=? AND version=? "
                "AND commit_sha=?",
                (agent, environment, version, commit),
            ).fetchone()
            if existing is not None:
                return Revision(*existing)
            (last,) = db.execute(
                "SELECT COALESCE(MAX(number), 0) FROM revisions WHERE agent=? AND environment=?",
                (agent, environment),
            ).fetchone()
            row = (
                last + 1,
                agent,
                environment,
                version,
                commit,
                branch,
                author,
                message,
                time.time(),
                manifest_json,
            )
            db.execute("INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return Revision(*row)

    def revisions(self, agent: str, environment: str) -> list[Revision]:
        rows = self._query(
            "SELECT * FROM revisions WHERE agent=? AND environment=? ORDER BY number",
            agent,
            environment,
        )
        return [Revision(*row) for row in rows]  # type: ignore[arg-type]

    # Rollouts --------------------------------------------------------------------------

    def begin_rollout(
        self,
        *,
        agent: str,
        environment: str,
        from_version: str | None,
        to_version: str,
        commit: str,
        author: str,
    ) -> Rollout:
        """A new rollout, or the unfinished one for the same move (a restart resumes it)."""
        with self._transaction() as db:
            open_row = db.execute(
                "SELECT * FROM rollouts WHERE agent=? AND environment=? AND result=? "
                "ORDER BY id DESC LIMIT 1",
                (agent, environment, RolloutResult.PROGRESSING.value),
            ).fetchone()
            if open_row is not None:
                if open_row[4] == to_version:
                    return _rollout(open_row)
                db.execute(
                    "UPDATE rollouts SET result=?, finished_at=?, reason=? WHERE id=?",
                    (
                        RolloutResult.SUPERSEDED.value,
                        time.time(),
                        f"superseded by version {to_version}",
                        open_row[0],
                    ),
                )
            cursor = db.execute(
                "INSERT INTO rollouts (agent, environment, from_version, to_version, commit_sha, "
                "author, started_at, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent,
                    environment,
                    from_version,
                    to_version,
                    commit,
                    author,
                    time.time(),
                    RolloutResult.PROGRESSING.value,
                ),
            )
            row = db.execute("SELECT * FROM rollouts WHERE id=?", (cursor.lastrowid,)).fetchone()
            return _rollout(row)

    def finish_rollout(self, rollout_id: int, result: RolloutResult, reason: str = "") -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE rollouts SET result=?, finished_at=?, reason=? WHERE id=?",
                (result.value, time.time(), reason, rollout_id),
            )

    def rollouts(
        self, agent: str | None = None, environment: str | None = None, limit: int = 500
    ) -> list[Rollout]:
        where, args = _matching(agent=agent, environment=environment)
        rows = self._query(f"SELECT * FROM rollouts {where} ORDER BY id LIMIT ?", *args, limit)  # noqa: S608
        return [_rollout(row) for row in rows]

    # Events ----------------------------------------------------------------------------

    def record_event(
        self, *, type: str, reason: str, message: str, environment: str = "", agent: str = ""
    ) -> Event:
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO events (time, type, reason, environment, agent, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now, type, reason, environment, agent, message),
            )
            event_id = cursor.lastrowid or 0
            db.execute("DELETE FROM events WHERE id <= ?", (event_id - MAX_EVENTS,))
        return Event(event_id, now, type, reason, environment, agent, message)

    def events(self, environment: str | None = None, agent: str | None = None) -> list[Event]:
        where, args = _matching(environment=environment, agent=agent)
        rows = self._query(f"SELECT * FROM events {where} ORDER BY id", *args)  # noqa: S608
        return [Event(*row) for row in rows]  # type: ignore[arg-type]

    # Webhook deliveries ----------------------------------------------------------------

    def record_delivery(self, provider: str, delivery: str) -> bool:
        """Remember a delivery id; False when it was already known (a replay)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?)",
                (provider, delivery, time.time()),
            )
            if cursor.rowcount:
                db.execute(
                    "DELETE FROM deliveries WHERE rowid <= (SELECT MAX(rowid) FROM deliveries) - ?",
                    (MAX_DELIVERIES,),
                )
            return bool(cursor.rowcount)

    # Pins --------------------------------------------------------------------------------

    def pin(self, record: Pin) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO pins VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.environment,
                    record.agent,
                    record.version,
                    record.pinned_from,
                    record.actor,
                    record.reason,
                    record.created_at,
                ),
            )

    def unpin(self, environment: str, agent: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM pins WHERE environment = ? AND agent = ?", (environment, agent)
            )
            return bool(cursor.rowcount)

    def pins(self, environment: str | None = None) -> list[Pin]:
        sql = "SELECT * FROM pins"
        rows = (
            self._query(sql + " WHERE environment = ? ORDER BY agent", environment)
            if environment is not None
            else self._query(sql + " ORDER BY environment, agent")
        )
        return [Pin(*row) for row in rows]  # type: ignore[arg-type]

    # Environments ----------------------------------------------------------------------

    def save_environment(self, record: EnvironmentRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO environments VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "branch=excluded.branch, commit_sha=excluded.commit_sha, "
                "last_push_at=excluded.last_push_at, retired_commit=excluded.retired_commit",
                (
                    record.name,
                    record.branch,
                    record.commit,
                    record.last_push_at,
                    record.retired_commit,
                ),
            )

    def environment_records(self) -> dict[str, EnvironmentRecord]:
        rows = self._query("SELECT * FROM environments ORDER BY name")
        return {str(row[0]): EnvironmentRecord(*row) for row in rows}  # type: ignore[arg-type]

    def forget_environment(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM environments WHERE name = ?", (name,))


def _matching(**columns: str | None) -> tuple[str, list[str]]:
    """A WHERE clause for the columns given a value (names are ours, never user input)."""
    given = {name: value for name, value in columns.items() if value is not None}
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{name} = ?" for name in given), list(given.values())


def _rollout(row: tuple[object, ...]) -> Rollout:
    values = list(row)
    values[9] = RolloutResult(str(values[9]))
    return Rollout(*values)  # type: ignore[arg-type]
