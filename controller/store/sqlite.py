"""The store on embedded SQLite under the state directory.

One file, WAL mode, one connection guarded by a lock: the controller is a single process
and every write is small. Writes that could be repeated after a crash are idempotent
(unique keys, upserts), so a controller killed at any point converges on restart
without duplicate records.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.store.errors import unwritable
from controller.store.records import (
    Deployed,
    EnvironmentRecord,
    Event,
    Pin,
    PinKind,
    ReviewRequest,
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
-- A reconcile reads its environment's rows: without this, every row of every environment.
CREATE INDEX IF NOT EXISTS deployed_by_environment ON deployed (environment, agent);
CREATE TABLE IF NOT EXISTS revisions (
    number INTEGER NOT NULL, agent TEXT NOT NULL, environment TEXT NOT NULL,
    version TEXT NOT NULL, commit_sha TEXT NOT NULL, branch TEXT NOT NULL,
    author TEXT NOT NULL, message TEXT NOT NULL, created_at REAL NOT NULL,
    manifest_json TEXT NOT NULL, prompt_text TEXT,
    PRIMARY KEY (agent, environment, number),
    UNIQUE (agent, environment, version, commit_sha)
);
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, environment TEXT NOT NULL,
    from_version TEXT, to_version TEXT NOT NULL, commit_sha TEXT NOT NULL,
    author TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    result TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    steps_json TEXT NOT NULL DEFAULT '[]'
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
    kind TEXT NOT NULL DEFAULT 'undo',
    PRIMARY KEY (environment, agent)
);
CREATE TABLE IF NOT EXISTS environments (
    name TEXT PRIMARY KEY, branch TEXT NOT NULL, commit_sha TEXT NOT NULL,
    last_push_at REAL NOT NULL, retired_commit TEXT
);
CREATE TABLE IF NOT EXISTS steering_intents (
    environment TEXT NOT NULL, agent TEXT NOT NULL, intent TEXT NOT NULL,
    actor TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (environment, agent)
);
CREATE TABLE IF NOT EXISTS review_requests (
    branch TEXT NOT NULL, number INTEGER NOT NULL, from_fork INTEGER NOT NULL,
    labels_json TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (branch, number)
);
"""

MAX_EVENTS = 10_000
MAX_DELIVERIES = 10_000


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Reentrant: a batch holds it while the writes inside take it again.
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a store was created; old rows get the old meaning."""
        pin_columns = {row[1] for row in self._db.execute("PRAGMA table_info(pins)")}
        if "kind" not in pin_columns:
            self._db.execute("ALTER TABLE pins ADD COLUMN kind TEXT NOT NULL DEFAULT 'undo'")
        revision_columns = {row[1] for row in self._db.execute("PRAGMA table_info(revisions)")}
        if "prompt_text" not in revision_columns:
            self._db.execute("ALTER TABLE revisions ADD COLUMN prompt_text TEXT")
        rollout_columns = {row[1] for row in self._db.execute("PRAGMA table_info(rollouts)")}
        if "steps_json" not in rollout_columns:
            self._db.execute(
                "ALTER TABLE rollouts ADD COLUMN steps_json TEXT NOT NULL DEFAULT '[]'"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def on_statement(self, callback: Callable[[str], object] | None) -> None:
        """Call `callback` with each SQL statement run (None: stop); for tests and benches
        that count what a request costs the store."""
        with self._lock:
            self._db.set_trace_callback(callback)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside commits together, in one transaction.

        A deploy writes a revision, a rollout and an event together; one transaction
        instead of one each. Keep it to plain calls: nothing inside may await, since the
        store stays locked for other threads until the batch ends.
        """
        with self._transaction():
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batch_depth:  # inside this thread's batch: it commits for us
                yield self._db
                return
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
        prompt_text: str | None = None,
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
                prompt_text,
            )
            db.execute("INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return Revision(*row)

    def revisions(self, agent: str, environment: str, limit: int = 500) -> list[Revision]:
        """The newest `limit` revisions, oldest first (as `kubectl rollout history`)."""
        rows = self._query(
            "SELECT * FROM (SELECT * FROM revisions WHERE agent=? AND environment=? "
            "ORDER BY number DESC LIMIT ?) ORDER BY number",
            agent,
            environment,
            limit,
        )
        return [Revision(*row) for row in rows]  # type: ignore[arg-type]

    def revision(self, agent: str, environment: str, number: int) -> Revision | None:
        rows = self._query(
            "SELECT * FROM revisions WHERE agent=? AND environment=? AND number=?",
            agent,
            environment,
            number,
        )
        return Revision(*rows[0]) if rows else None  # type: ignore[arg-type]

    def revision_serving(self, agent: str, environment: str, version: str) -> Revision | None:
        """The revision behind what serves: the one deployed from the recorded commit,
        else the newest of that version."""
        rows = self._query(
            "SELECT r.* FROM revisions r LEFT JOIN deployed d ON d.agent = r.agent "
            "AND d.environment = r.environment AND d.version = r.version "
            "AND d.commit_sha = r.commit_sha WHERE r.agent=? AND r.environment=? "
            "AND r.version=? ORDER BY d.agent IS NULL, r.number DESC LIMIT 1",
            agent,
            environment,
            version,
        )
        return Revision(*rows[0]) if rows else None  # type: ignore[arg-type]

    def revision_before(
        self, agent: str, environment: str, number: int | None, other_than: str | None
    ) -> Revision | None:
        """The newest revision older than `number` (any, when None) whose version is not
        `other_than`: where `rollout undo` goes by default."""
        rows = self._query(
            "SELECT * FROM revisions WHERE agent=? AND environment=? AND number < ? "
            "AND version IS NOT ? ORDER BY number DESC LIMIT 1",
            agent,
            environment,
            number if number is not None else 2**62,
            other_than,
        )
        return Revision(*rows[0]) if rows else None  # type: ignore[arg-type]

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
        """The newest `limit` rollouts, oldest first (as kubectl lists history)."""
        where, args = _matching(agent=agent, environment=environment)
        newest = f"SELECT * FROM rollouts {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
        rows = self._query(f"SELECT * FROM ({newest}) ORDER BY id", *args, limit)  # noqa: S608
        return [_rollout(row) for row in rows]

    def rollout(self, rollout_id: int) -> Rollout:
        """One rollout by id (one the caller began, so it exists)."""
        (row,) = self._query("SELECT * FROM rollouts WHERE id = ?", rollout_id)
        return _rollout(row)

    def open_rollouts(self, environment: str | None = None) -> list[Rollout]:
        """Rollouts still Progressing (in flight, or left open by a crash), oldest first."""
        where, args = _matching(environment=environment, result=RolloutResult.PROGRESSING.value)
        rows = self._query(f"SELECT * FROM rollouts {where} ORDER BY id", *args)  # noqa: S608
        return [_rollout(row) for row in rows]

    def prune_history(self, keep: int, production: str) -> int:
        """Bound the rollout and revision history; how many rows went.

        Kept: the newest `keep` rollouts and revisions of every agent in every environment
        (what `rollout history` lists), every rollout still open, and every revision an
        agent runs, is pinned to or has a rollout open to or from. A preview that is gone
        (torn down: nothing deployed, its record forgotten or retired) loses its history
        (production's stays). Without this both tables grow with every push, forever."""
        open_ = RolloutResult.PROGRESSING.value
        with self._transaction() as db:
            gone_environment = (
                "environment != ? AND environment NOT IN (SELECT environment FROM deployed) "
                "AND environment NOT IN (SELECT name FROM environments WHERE retired_commit "
                "IS NULL) AND environment NOT IN (SELECT environment FROM rollouts WHERE "
                "result = ?)"
            )
            removed = db.execute(
                f"DELETE FROM rollouts WHERE {gone_environment}",  # noqa: S608 - our own text
                (production, open_),
            ).rowcount
            removed += db.execute(
                f"DELETE FROM revisions WHERE {gone_environment}",  # noqa: S608 - our own text
                (production, open_),
            ).rowcount
            # One pass of a window over each table, not a subquery per row: at 100,000
            # rollouts the correlated form held the store's lock for seconds.
            removed += db.execute(
                "DELETE FROM rollouts WHERE result != ? AND id IN (SELECT id FROM (SELECT id, "
                "ROW_NUMBER() OVER (PARTITION BY agent, environment ORDER BY id DESC) AS age "
                "FROM rollouts) WHERE age > ?)",
                (open_, keep),
            ).rowcount
            removed += db.execute(
                "DELETE FROM revisions WHERE rowid IN (SELECT rowid FROM (SELECT rowid, "
                "ROW_NUMBER() OVER (PARTITION BY agent, environment ORDER BY number DESC) "
                "AS age FROM revisions) WHERE age > ?) "
                "AND NOT EXISTS (SELECT 1 FROM deployed d WHERE d.agent = revisions.agent AND "
                "d.environment = revisions.environment AND d.version = revisions.version) "
                "AND NOT EXISTS (SELECT 1 FROM pins p WHERE p.agent = revisions.agent AND "
                "p.environment = revisions.environment AND p.version = revisions.version) "
                "AND NOT EXISTS (SELECT 1 FROM rollouts o WHERE o.result = ? AND "
                "o.agent = revisions.agent AND o.environment = revisions.environment AND "
                "revisions.version IN (o.to_version, o.from_version))",
                (keep, open_),
            ).rowcount
        return int(removed)

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

    def events(
        self, environment: str | None = None, agent: str | None = None, limit: int | None = None
    ) -> list[Event]:
        """Matching events, oldest first; with `limit`, only the newest that many."""
        where, args = _matching(environment=environment, agent=agent)
        if limit is None:
            rows = self._query(f"SELECT * FROM events {where} ORDER BY id", *args)  # noqa: S608
        else:
            rows = self._query(
                f"SELECT * FROM (SELECT * FROM events {where} ORDER BY id DESC LIMIT ?) "  # noqa: S608
                "ORDER BY id",
                *args,
                limit,
            )
        return [Event(*row) for row in rows]  # type: ignore[arg-type]

    def newest_event_id(self, environment: str | None = None, agent: str | None = None) -> int:
        """The newest matching event's id (0 for none): a cheap "anything new?" for a
        page that shows events live."""
        where, args = _matching(environment=environment, agent=agent)
        rows = self._query(f"SELECT COALESCE(MAX(id), 0) FROM events {where}", *args)  # noqa: S608
        return int(str(rows[0][0]))

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

    # Review requests (pull / merge requests) -------------------------------------------

    def record_review_request(self, record: ReviewRequest) -> None:
        """Remember what a webhook said of a pull request; the labels given replace the
        ones known, so removing the trusted label takes effect."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO review_requests VALUES (?, ?, ?, ?, ?) ON CONFLICT (branch, number) "
                "DO UPDATE SET from_fork=excluded.from_fork, labels_json=excluded.labels_json, "
                "updated_at=excluded.updated_at",
                (
                    record.branch,
                    record.number,
                    int(record.from_fork),
                    json.dumps(sorted(record.labels)),
                    time.time(),
                ),
            )

    def review_requests(self, branch: str) -> list[ReviewRequest]:
        rows = self._query(
            "SELECT branch, number, from_fork, labels_json FROM review_requests "
            "WHERE branch = ? ORDER BY number",
            branch,
        )
        return [_review_request(row) for row in rows]

    def review_requests_of(self, branches: Iterable[str]) -> dict[str, list[ReviewRequest]]:
        """The review requests of many branches in one query (a page of every environment
        asks once, however many there are); branches without any are left out."""
        rows = self._query(
            "SELECT branch, number, from_fork, labels_json FROM review_requests "
            "WHERE branch IN (SELECT value FROM json_each(?)) ORDER BY branch, number",
            json.dumps(sorted(set(branches))),
        )
        found: dict[str, list[ReviewRequest]] = {}
        for row in rows:
            request = _review_request(row)
            found.setdefault(request.branch, []).append(request)
        return found

    # Pins --------------------------------------------------------------------------------

    def pin(self, record: Pin) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO pins VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.environment,
                    record.agent,
                    record.version,
                    record.pinned_from,
                    record.actor,
                    record.reason,
                    record.created_at,
                    record.kind.value,
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
        return [_pin(row) for row in rows]

    # Environments ----------------------------------------------------------------------

    # Steering a running canary ---------------------------------------------------------

    def record_intent(self, environment: str, agent: str, intent: str, actor: str) -> None:
        """What a person asked of `agent`'s running rollout (the newest ask replaces older)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO steering_intents VALUES (?, ?, ?, ?, ?)",
                (environment, agent, intent, actor, time.time()),
            )

    def record_rollout_step(self, rollout_id: int, step: dict[str, Any]) -> None:
        """Append one canary step (what it did, when) to the rollout's record."""
        with self._transaction() as db:
            db.execute(
                "UPDATE rollouts SET steps_json = json_insert(steps_json, '$[#]', json(?)) "
                "WHERE id = ?",
                (json.dumps(step, sort_keys=True), rollout_id),
            )

    def take_intent(self, environment: str, agent: str) -> tuple[str, str] | None:
        """The waiting intent and its actor, removed as it is taken (None: nothing asked)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT intent, actor FROM steering_intents WHERE environment = ? AND agent = ?",
                (environment, agent),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "DELETE FROM steering_intents WHERE environment = ? AND agent = ?",
                (environment, agent),
            )
            return str(row[0]), str(row[1])

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

    def environment_record(self, name: str) -> EnvironmentRecord | None:
        """One environment's record: what a finished rollout asks, once per agent."""
        rows = self._query("SELECT * FROM environments WHERE name = ?", name)
        return EnvironmentRecord(*rows[0]) if rows else None  # type: ignore[arg-type]

    def forget_environment(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM environments WHERE name = ?", (name,))


def _matching(**columns: str | None) -> tuple[str, list[str]]:
    """A WHERE clause for the columns given a value (names are ours, never user input)."""
    given = {name: value for name, value in columns.items() if value is not None}
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{name} = ?" for name in given), list(given.values())


def _review_request(row: tuple[object, ...]) -> ReviewRequest:
    return ReviewRequest(
        branch=str(row[0]),
        number=int(str(row[1])),
        from_fork=bool(row[2]),
        labels=frozenset(json.loads(str(row[3]))),
    )


def _rollout(row: tuple[object, ...]) -> Rollout:
    values = list(row)
    values[9] = RolloutResult(str(values[9]))
    values[11] = tuple(json.loads(str(values[11])))
    return Rollout(*values)  # type: ignore[arg-type]


def _pin(row: tuple[object, ...]) -> Pin:
    values = list(row)
    values[7] = PinKind(str(values[7]))
    return Pin(*values)  # type: ignore[arg-type]
