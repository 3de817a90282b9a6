"""The fleet server's state: devices, tokens, campaigns, outcomes and the audit log, in SQLite.

Rules:

* Tokens (enrolment, device, operator) are random 256-bit strings shown once;
  only their sha256 is stored, and comparisons are constant-time lookups by
  hash.  (A slow password hash buys nothing for random 256-bit secrets.)
* An enrolment token has a number of uses; enrolling a device consumes one and
  returns that device's own token.  Re-enrolling an id replaces its token.
* Every management action is written to ``audit`` with the actor's name in
  the same transaction as the change it describes.
* A campaign's device set is fixed at creation (the enrolled devices then);
  its stage, status and each device's outcome change only through
  :meth:`FleetStore.evaluate`, which applies :func:`npusuite.edge.rollout.evaluate`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npusuite.edge.rollout import FINAL_STATES, RolloutPlan, evaluate
from npusuite.platform.errors import NotFoundError, UserError

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices(id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, enrolled_at_s REAL,
    last_seen_s REAL, version TEXT, target TEXT, health TEXT, update_state TEXT);
CREATE TABLE IF NOT EXISTS enrollment_tokens(token_hash TEXT PRIMARY KEY, uses_left INTEGER NOT NULL,
    created_by TEXT NOT NULL, created_at_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS operators(name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at_s REAL);
CREATE TABLE IF NOT EXISTS campaigns(id TEXT PRIMARY KEY, target TEXT NOT NULL, version TEXT NOT NULL,
    stages_pct TEXT NOT NULL, failure_threshold REAL NOT NULL, devices TEXT NOT NULL, stage INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, created_by TEXT NOT NULL, created_at_s REAL NOT NULL,
    finished_at_s REAL, device_timeout_s REAL NOT NULL DEFAULT 1800, stage_started_at_s REAL);
CREATE TABLE IF NOT EXISTS outcomes(campaign_id TEXT NOT NULL, device_id TEXT NOT NULL, state TEXT NOT NULL,
    detail TEXT, at_s REAL NOT NULL, PRIMARY KEY(campaign_id, device_id));
CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, at_s REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, detail TEXT NOT NULL);
"""

UPDATE_STATES = ("in_progress", "succeeded", "failed")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    target: str
    version: str
    plan: RolloutPlan
    devices: tuple[str, ...]
    stage: int
    status: str  # running | paused | halted | completed | cancelled
    reason: str | None
    created_by: str
    created_at_s: float
    finished_at_s: float | None
    stage_started_at_s: float | None

    def to_json(self, outcomes: dict[str, str] | None = None) -> dict[str, Any]:
        out = {"id": self.id, "target": self.target, "version": self.version,
               "stages_pct": list(self.plan.stages_pct), "failure_threshold": self.plan.failure_threshold,
               "device_timeout_s": self.plan.device_timeout_s, "devices": len(self.devices),
               "stage": self.stage + 1, "status": self.status, "reason": self.reason,
               "created_by": self.created_by, "created_at_s": self.created_at_s,
               "finished_at_s": self.finished_at_s}
        if outcomes is not None:
            counts = {s: 0 for s in UPDATE_STATES}
            for state in outcomes.values():
                counts[state] = counts.get(state, 0) + 1
            out["outcomes"] = counts
        return out


class FleetStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(campaigns)")}
        for col, decl in (("device_timeout_s", "REAL NOT NULL DEFAULT 1800"), ("stage_started_at_s", "REAL")):
            if col not in cols:  # a fleet.db from before these columns existed
                self._db.execute(f"ALTER TABLE campaigns ADD COLUMN {col} {decl}")
        self._lock = threading.RLock()

    def _tx(self):
        return _Tx(self._db, self._lock)

    def _audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO audit(at_s, actor, action, detail) VALUES(?,?,?,?)",
                         (time.time(), actor, action, json.dumps(detail)))
        logger.info("audit: %s %s %s", actor, action, json.dumps(detail))

    # -- identities --------------------------------------------------------
    def add_operator(self, name: str) -> str:
        """Create (or re-key) an operator; returns the new token (shown once)."""
        token = secrets.token_urlsafe(32)
        with self._tx() as db:
            db.execute("INSERT INTO operators(name, token_hash, created_at_s) VALUES(?,?,?) ON CONFLICT(name) "
                       "DO UPDATE SET token_hash = excluded.token_hash", (name, token_hash(token), time.time()))
            self._audit("cli", "add_operator", {"name": name})
        return token

    def operator_for(self, token: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT name FROM operators WHERE token_hash = ?", (token_hash(token),)).fetchone()
        return row[0] if row else None

    def create_enrollment_token(self, actor: str, uses: int) -> str:
        if uses < 1:
            raise UserError("uses must be >= 1")
        token = secrets.token_urlsafe(32)
        with self._tx() as db:
            db.execute("INSERT INTO enrollment_tokens VALUES(?,?,?,?)", (token_hash(token), uses, actor, time.time()))
            self._audit(actor, "create_enrollment_token", {"uses": uses})
        return token

    def enroll(self, enrollment_token: str, device_id: str) -> str:
        """Consume one use of ``enrollment_token``; returns the device's token.  Raises PermissionError."""
        device_token = secrets.token_urlsafe(32)
        with self._tx() as db:
            row = db.execute("SELECT uses_left FROM enrollment_tokens WHERE token_hash = ?",
                             (token_hash(enrollment_token),)).fetchone()
            if row is None or row[0] < 1:
                raise PermissionError("invalid or used-up enrolment token")
            db.execute("UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE token_hash = ?",
                       (token_hash(enrollment_token),))
            db.execute("INSERT INTO devices(id, token_hash, enrolled_at_s) VALUES(?,?,?) ON CONFLICT(id) "
                       "DO UPDATE SET token_hash = excluded.token_hash, enrolled_at_s = excluded.enrolled_at_s",
                       (device_id, token_hash(device_token), time.time()))
            self._audit(f"device:{device_id}", "enroll", {"device_id": device_id})
        return device_token

    def device_for(self, token: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM devices WHERE token_hash = ?", (token_hash(token),)).fetchone()
        return row[0] if row else None

    # -- devices -----------------------------------------------------------
    def heartbeat(self, device_id: str, version: str | None, target: str | None, health: dict[str, Any],
                  update: dict[str, Any] | None) -> dict[str, Any] | None:
        """Record a heartbeat (and an update report); returns what the device should install, if anything."""
        with self._tx() as db:
            db.execute("UPDATE devices SET last_seen_s = ?, version = ?, target = ?, health = ?, update_state = ? "
                       "WHERE id = ?", (time.time(), version, target, json.dumps(health),
                                        json.dumps(update) if update else None, device_id))
            if update and update.get("campaign_id") and update.get("state") in UPDATE_STATES:
                cid = update["campaign_id"]
                known = db.execute("SELECT state FROM outcomes WHERE campaign_id = ? AND device_id = ?",
                                   (cid, device_id)).fetchone()
                if known is None or known[0] not in FINAL_STATES:  # a final outcome is never rewritten
                    db.execute("INSERT INTO outcomes VALUES(?,?,?,?,?) ON CONFLICT(campaign_id, device_id) DO UPDATE "
                               "SET state = excluded.state, detail = excluded.detail, at_s = excluded.at_s",
                               (cid, device_id, update["state"], str(update.get("detail") or "")[:500], time.time()))
            for camp in self._campaigns(db, "WHERE status = 'running'"):
                if device_id not in camp.devices:
                    continue
                camp = self._evaluate(db, camp)
                outcome = self._outcomes(db, camp.id).get(device_id)
                if camp.status == "running" and outcome not in FINAL_STATES and device_id in self._assigned(db, camp):
                    return {"campaign_id": camp.id, "target": camp.target, "version": camp.version}
        return None

    def devices(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, enrolled_at_s, last_seen_s, version, target, health, update_state "
                                    "FROM devices ORDER BY id").fetchall()
        return [{"id": r[0], "enrolled_at_s": r[1], "last_seen_s": r[2], "version": r[3], "target": r[4],
                 "health": json.loads(r[5]) if r[5] else None, "update": json.loads(r[6]) if r[6] else None}
                for r in rows]

    # -- campaigns ---------------------------------------------------------
    def create_campaign(self, actor: str, target: str, version: str, plan: RolloutPlan) -> Campaign:
        cid = uuid.uuid4().hex[:12]
        with self._tx() as db:
            devices = [r[0] for r in db.execute("SELECT id FROM devices ORDER BY id")]
            if not devices:
                raise UserError("no enrolled devices to roll out to")
            now = time.time()
            db.execute("INSERT INTO campaigns VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (cid, target, version, json.dumps(list(plan.stages_pct)), plan.failure_threshold,
                        json.dumps(devices), 0, "running", None, actor, now, None, plan.device_timeout_s, now))
            self._audit(actor, "start_campaign", {"campaign_id": cid, "target": target, "version": version,
                                                  "stages_pct": list(plan.stages_pct),
                                                  "failure_threshold": plan.failure_threshold,
                                                  "device_timeout_s": plan.device_timeout_s,
                                                  "devices": len(devices)})
            return self._evaluate(db, self._campaign(db, cid))

    def set_status(self, actor: str, campaign_id: str, action: str) -> Campaign:
        """``pause``, ``resume`` (also of a halted campaign: an operator override) or ``cancel``."""
        allowed = {"pause": ({"running"}, "paused"), "resume": ({"paused", "halted"}, "running"),
                   "cancel": ({"running", "paused", "halted"}, "cancelled")}
        with self._tx() as db:
            camp = self._campaign(db, campaign_id)
            sources, new = allowed[action]
            if camp.status not in sources:
                raise UserError(f"cannot {action} a {camp.status} campaign")
            db.execute("UPDATE campaigns SET status = ?, reason = ? WHERE id = ?",
                       (new, f"{action} by {actor}", campaign_id))
            self._audit(actor, f"{action}_campaign", {"campaign_id": campaign_id, "from": camp.status})
            camp = self._campaign(db, campaign_id)
            return self._evaluate(db, camp) if new == "running" else camp

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        with self._tx() as db:
            camp = self._campaign(db, campaign_id)
            if camp.status == "running":
                camp = self._evaluate(db, camp)
            return camp.to_json(self._outcomes(db, campaign_id))

    def campaigns(self) -> list[dict[str, Any]]:
        with self._tx() as db:
            return [c.to_json(self._outcomes(db, c.id)) for c in self._campaigns(db, "ORDER BY created_at_s")]

    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT at_s, actor, action, detail FROM audit ORDER BY seq DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [{"at_s": r[0], "actor": r[1], "action": r[2], "detail": json.loads(r[3])} for r in rows]

    # -- internals ---------------------------------------------------------
    def _campaigns(self, db: sqlite3.Connection, where: str) -> list[Campaign]:
        return [self._row(r) for r in db.execute(f"SELECT * FROM campaigns {where}").fetchall()]

    def _campaign(self, db: sqlite3.Connection, cid: str) -> Campaign:
        row = db.execute("SELECT * FROM campaigns WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise NotFoundError(f"no campaign {cid}")
        return self._row(row)

    @staticmethod
    def _row(r: tuple) -> Campaign:
        return Campaign(r[0], r[1], r[2], RolloutPlan(tuple(json.loads(r[3])), r[4], r[12]),
                        tuple(json.loads(r[5])), r[6], r[7], r[8], r[9], r[10], r[11], r[13])

    @staticmethod
    def _outcomes(db: sqlite3.Connection, cid: str) -> dict[str, str]:
        return dict(db.execute("SELECT device_id, state FROM outcomes WHERE campaign_id = ?", (cid,)).fetchall())

    def _assigned(self, db: sqlite3.Connection, camp: Campaign) -> tuple[str, ...]:
        return evaluate(camp.plan, camp.id, camp.devices, camp.stage, self._outcomes(db, camp.id)).assigned

    def _evaluate(self, db: sqlite3.Connection, camp: Campaign) -> Campaign:
        """Apply the rollout policy to a running campaign and persist the change (audited as ``fleet``)."""
        if camp.status != "running":
            return camp
        now = time.time()
        age = now - (camp.stage_started_at_s or camp.created_at_s)
        d = evaluate(camp.plan, camp.id, camp.devices, camp.stage, self._outcomes(db, camp.id), stage_age_s=age)
        for device_id in d.timed_out:
            db.execute("INSERT INTO outcomes VALUES(?,?,?,?,?) ON CONFLICT(campaign_id, device_id) DO UPDATE "
                       "SET state = excluded.state, detail = excluded.detail, at_s = excluded.at_s",
                       (camp.id, device_id, "failed", f"no report within {camp.plan.device_timeout_s:.0f} s", now))
            self._audit("fleet", "device_timed_out", {"campaign_id": camp.id, "device_id": device_id})
        status = {"halt": "halted", "complete": "completed"}.get(d.action, "running")
        if d.stage != camp.stage or status != camp.status:
            finished = now if status in ("halted", "completed") else None
            started = now if d.stage != camp.stage else camp.stage_started_at_s
            db.execute("UPDATE campaigns SET stage = ?, status = ?, reason = ?, finished_at_s = ?, "
                       "stage_started_at_s = ? WHERE id = ?", (d.stage, status, d.reason, finished, started, camp.id))
            if d.stage != camp.stage:
                self._audit("fleet", "advance_stage", {"campaign_id": camp.id, "stage": d.stage + 1})
            if status != "running":
                self._audit("fleet", f"{status}_campaign", {"campaign_id": camp.id, "reason": d.reason,
                                                            "failure_rate": round(d.failure_rate, 4)})
            camp = self._campaign(db, camp.id)
        return camp


class _Tx:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self.lock.release()
