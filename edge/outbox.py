"""The edge box's durable result outbox: SQLite in WAL mode.

Rules:

* A result is **recorded before anything acts on it**: :meth:`Outbox.put`
  commits the record (and, in the same transaction, the source cursor that
  produced it) and only then returns; the agent fires reject signals and
  uploads after that.
* Every record carries an **idempotency id**.  Putting an id that is already
  in the outbox (or was already delivered) is a no-op, and the upstream
  receives the same id on every retry, so it can drop repeats.  Delivered ids
  are remembered (``delivered`` table, ids only) until pruned.
* Delivery is at least once from here (claim -> send -> ack); with the
  upstream's idempotent ingest that makes each result land **exactly once**,
  across lost links and SIGKILL.  A record leaves the outbox only when the
  upstream acknowledged it, or when the upstream permanently rejected it, in
  which case it moves to ``dead_letters`` with the reason (never silently).
* **Bounded disk**: pending payload bytes are kept under ``max_bytes``.  When
  a new record does not fit, the oldest pending *OK* results are dropped
  first; if that is not enough, a new OK result is itself dropped.  An *NG*
  (defective) result is **never** dropped: it is stored even over budget and
  counted in ``ng_over_budget``.  Every drop is counted (persisted in the
  database, and exported as Prometheus metrics).
* ``fsync`` policy (SQLite ``synchronous``): ``full`` syncs the WAL on every
  commit (survives power loss); ``normal`` syncs at checkpoints (survives a
  process crash or SIGKILL, may lose the last commits on power loss); ``off``
  leaves it to the OS (survives SIGKILL, not power loss).

The outbox is thread-safe (one connection behind a lock).
"""

from __future__ import annotations

import enum
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from npusuite.platform.observability import names as N
from npusuite.platform.observability.names import counter_base as _c

logger = logging.getLogger(__name__)

FsyncPolicy = Literal["full", "normal", "off"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("full", "normal", "off")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    defective INTEGER NOT NULL,
    payload TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at_s REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_s REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS results_ok_seq ON results(defective, seq);
CREATE TABLE IF NOT EXISTS delivered(id TEXT PRIMARY KEY, delivered_at_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters(
    id TEXT PRIMARY KEY, payload TEXT NOT NULL, reason TEXT NOT NULL, at_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cursors(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class PutOutcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # id already recorded (or delivered): nothing changed
    DROPPED = "dropped"  # an OK result that did not fit in the disk budget


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: Path
    max_bytes: int = 256 * 1024 * 1024
    fsync: FsyncPolicy = "full"
    busy_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {self.fsync!r}")
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: str
    defective: bool
    payload: dict[str, Any]
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    pending_ng: int
    pending_bytes: int
    delivered: int
    dropped_ok: int
    ng_over_budget: int
    dead_letters: int

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class Outbox:
    """SQLite-WAL outbox; see the module docstring for its guarantees."""

    def __init__(self, config: OutboxConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        config.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(config.path, timeout=config.busy_timeout_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={config.fsync.upper()}")
        self._db.executescript(_SCHEMA)
        self.registry = registry if registry is not None else CollectorRegistry()
        self._m_pending = Gauge(N.EDGE_OUTBOX_PENDING_RECORDS, "Results waiting for upload", ["kind"],
                                registry=self.registry)
        self._m_bytes = Gauge(N.EDGE_OUTBOX_PENDING_BYTES, "Payload bytes waiting for upload",
                              registry=self.registry)
        self._m_dropped = Counter(_c(N.EDGE_OUTBOX_DROPPED), "Results dropped by the full-disk policy "
                                  "(only OK results are ever dropped)", ["kind"], registry=self.registry)
        self._m_over = Counter(_c(N.EDGE_OUTBOX_NG_OVER_BUDGET), "NG results kept although over the disk "
                               "budget (NG is never dropped)", registry=self.registry)
        self._m_delivered = Counter(_c(N.EDGE_OUTBOX_DELIVERED), "Results acknowledged by the upstream",
                                    registry=self.registry)
        self._m_dead = Counter(_c(N.EDGE_OUTBOX_DEAD_LETTERS), "Results the upstream rejected permanently",
                               registry=self.registry)
        self._m_write = Histogram(N.EDGE_OUTBOX_WRITE_SECONDS, "Time to record one result durably (the SQLite "
                                  "transaction incl. its fsync): a slow or failing disk shows here first",
                                  buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                                  registry=self.registry)
        self._recount()

    # -- writing -----------------------------------------------------------
    def put(self, record_id: str, defective: bool, payload: dict[str, Any],
            cursor: tuple[str, int] | None = None) -> PutOutcome:
        """Durably record one result (and the source ``cursor`` that produced it) in one transaction.

        Returns whether it was stored, was a duplicate id, or (OK results only) was dropped for
        lack of disk budget.  Raises ``sqlite3.Error`` if the disk itself fails.
        """
        body = json.dumps(payload, separators=(",", ":"))
        size = len(body.encode())
        with self._lock, self._m_write.time(), self._tx() as db:
            if cursor is not None:
                db.execute("INSERT INTO cursors(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE "
                           "SET value = max(value, excluded.value)", cursor)
            if db.execute("SELECT 1 FROM results WHERE id = ? UNION ALL SELECT 1 FROM delivered WHERE id = ? "
                          "UNION ALL SELECT 1 FROM dead_letters WHERE id = ?", (record_id,) * 3).fetchone():
                return PutOutcome.DUPLICATE
            if not self._make_room(db, size, defective):
                self._bump(db, "dropped_ok")
                self._m_dropped.labels(kind="ok").inc()
                logger.warning("outbox full: dropped new OK result %s (%d bytes)", record_id, size)
                return PutOutcome.DROPPED
            db.execute("INSERT INTO results(id, defective, payload, size_bytes, created_at_s) VALUES(?,?,?,?,?)",
                       (record_id, int(defective), body, size, time.time()))
            self._adjust(db, 1, int(defective), size)
        self._m_pending.labels(kind="ng" if defective else "ok").inc()
        self._m_bytes.inc(size)
        return PutOutcome.STORED

    def _make_room(self, db: sqlite3.Connection, size: int, defective: bool) -> bool:
        used = self._counter(db, "pending_bytes")
        budget = self.config.max_bytes
        if used + size <= budget:
            return True
        # Oldest OK results go first; NG rows are never selected.
        dropped = 0
        while used + size > budget:
            rows = db.execute("SELECT seq, size_bytes FROM results WHERE defective = 0 ORDER BY seq LIMIT 64"
                              ).fetchall()
            if not rows:
                break
            for seq, row_size in rows:
                if used + size <= budget:
                    break
                db.execute("DELETE FROM results WHERE seq = ?", (seq,))
                self._adjust(db, -1, 0, -row_size)
                used -= row_size
                dropped += 1
        if dropped:
            self._bump(db, "dropped_ok", dropped)
            self._m_dropped.labels(kind="ok").inc(dropped)
            logger.warning("outbox full: dropped %d oldest OK results to make room", dropped)
            self._refresh_gauges_locked(db)
        if used + size <= budget:
            return True
        if defective:
            self._bump(db, "ng_over_budget")
            self._m_over.inc()
            logger.warning("outbox over budget with NG results only; keeping the new NG result anyway")
            return True
        return False

    # -- delivery ----------------------------------------------------------
    def claim(self, limit: int, now_s: float | None = None) -> list[OutboxRecord]:
        """The oldest pending records whose retry time has come (NG before OK), at most ``limit``."""
        now_s = time.time() if now_s is None else now_s
        with self._lock:
            rows = self._db.execute(
                "SELECT id, defective, payload, attempts FROM results WHERE next_attempt_at_s <= ? "
                "ORDER BY defective DESC, seq LIMIT ?", (now_s, limit)).fetchall()
        return [OutboxRecord(r[0], bool(r[1]), json.loads(r[2]), r[3]) for r in rows]

    def ack(self, ids: Iterable[str]) -> int:
        """The upstream has these ids: remove them (remembering the ids) in one transaction."""
        ids = list(ids)
        if not ids:
            return 0
        now = time.time()
        with self._lock, self._tx() as db:
            n = 0
            for rid in ids:
                for ng, size in db.execute("DELETE FROM results WHERE id = ? RETURNING defective, size_bytes",
                                           (rid,)).fetchall():
                    self._adjust(db, -1, -ng, -size)
                    n += 1
                db.execute("INSERT OR IGNORE INTO delivered(id, delivered_at_s) VALUES(?, ?)", (rid, now))
            self._bump(db, "delivered", n)
            self._refresh_gauges_locked(db)
        self._m_delivered.inc(n)
        return n

    def retry_later(self, ids: Iterable[str], delay_s: float, error: str) -> None:
        """Count a failed attempt and hold these ids back for ``delay_s``."""
        with self._lock, self._tx() as db:
            for rid in ids:
                db.execute("UPDATE results SET attempts = attempts + 1, next_attempt_at_s = ?, last_error = ? "
                           "WHERE id = ?", (time.time() + delay_s, error[:500], rid))

    def dead_letter(self, record_id: str, reason: str) -> None:
        """The upstream refused this record for good: move it aside with the reason (kept, not lost)."""
        with self._lock, self._tx() as db:
            row = db.execute("SELECT payload, defective, size_bytes FROM results WHERE id = ?",
                             (record_id,)).fetchone()
            if row is None:
                return
            db.execute("INSERT OR REPLACE INTO dead_letters(id, payload, reason, at_s) VALUES(?,?,?,?)",
                       (record_id, row[0], reason[:2000], time.time()))
            db.execute("DELETE FROM results WHERE id = ?", (record_id,))
            self._adjust(db, -1, -row[1], -row[2])
            self._bump(db, "dead_letters")
            self._refresh_gauges_locked(db)
        self._m_dead.inc()
        logger.error("upstream rejected result %s permanently: %s (kept in dead_letters)", record_id, reason)

    def prune_delivered(self, older_than_s: float) -> int:
        """Forget delivered ids older than ``older_than_s`` (they only guard against re-puts)."""
        with self._lock, self._tx() as db:
            return db.execute("DELETE FROM delivered WHERE delivered_at_s < ?",
                              (time.time() - older_than_s,)).rowcount

    # -- reading -----------------------------------------------------------
    def known(self, record_id: str) -> bool:
        """Is this id pending, delivered or dead-lettered (i.e. already recorded once)?"""
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM results WHERE id = ? UNION ALL SELECT 1 FROM delivered WHERE id = ? "
                "UNION ALL SELECT 1 FROM dead_letters WHERE id = ?", (record_id,) * 3).fetchone() is not None

    def next_boot(self) -> int:
        """Durably count one more start of the agent; returns the new boot number (1, 2, ...)."""
        with self._lock, self._tx() as db:
            self._bump(db, "boot")
            return db.execute("SELECT value FROM counters WHERE name = 'boot'").fetchone()[0]

    def cursor(self, name: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def stats(self) -> OutboxStats:
        with self._lock:
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return OutboxStats(pending=counters.get("pending", 0), pending_ng=counters.get("pending_ng", 0),
                           pending_bytes=counters.get("pending_bytes", 0),
                           delivered=counters.get("delivered", 0), dropped_ok=counters.get("dropped_ok", 0),
                           ng_over_budget=counters.get("ng_over_budget", 0),
                           dead_letters=counters.get("dead_letters", 0))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals ---------------------------------------------------------
    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int = 1) -> None:
        db.execute("INSERT INTO counters(name, value) VALUES(?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, by))

    @staticmethod
    def _counter(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def _adjust(self, db: sqlite3.Connection, count: int, ng: int, size: int) -> None:
        """Keep the pending totals in step with ``results`` inside the same transaction."""
        for name, by in (("pending", count), ("pending_ng", ng), ("pending_bytes", size)):
            if by:
                self._bump(db, name, by)

    def _recount(self) -> None:
        """At open: rebuild the pending totals from the table (one scan), so they can never drift."""
        with self._lock, self._tx() as db:
            pending, ng, size = db.execute("SELECT count(*), coalesce(sum(defective), 0), "
                                           "coalesce(sum(size_bytes), 0) FROM results").fetchone()
            for name, value in (("pending", pending), ("pending_ng", ng), ("pending_bytes", size)):
                db.execute("INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE "
                           "SET value = excluded.value", (name, value))
            self._refresh_gauges_locked(db)

    def _refresh_gauges_locked(self, db: sqlite3.Connection) -> None:
        pending, ng, size = (self._counter(db, n) for n in ("pending", "pending_ng", "pending_bytes"))
        self._m_pending.labels(kind="ng").set(ng)
        self._m_pending.labels(kind="ok").set(pending - ng)
        self._m_bytes.set(size)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
