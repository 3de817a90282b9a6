"""The box's side of the fleet protocol: enrol once, heartbeat, run the updates the fleet assigns.

Rules:

* The device token is obtained once with an enrolment token and kept in
  ``BOX/device-token`` (0600); the enrolment token is not stored.
* Every heartbeat carries the running version, the agent's health and the
  state of the campaign update it is working on.  Outcomes are final once
  reported: ``succeeded`` (committed, or already running that version) or
  ``failed`` (refused or rolled back).  They are kept in
  ``BOX/fleet-state.json`` so a restarted box neither retries a campaign it
  failed nor forgets to report it.
* An assigned update runs on its own thread; heartbeats go on meanwhile and
  say ``in_progress``.
* A ``network`` refusal (the repository could not be reached) is not an
  outcome: the box stays ``in_progress`` and tries again after a backoff
  (10 s doubling to 5 min), since the bundle was never judged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from npusuite.edge.updates import UpdateManager
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


class FleetClient:
    def __init__(self, fleet_url: str, device_id: str, box_dir: Path, updates: UpdateManager | None,
                 health: Callable[[], dict[str, Any]], enrollment_token: str | None = None,
                 interval_s: float = 5.0, http: httpx.Client | None = None) -> None:
        self.url = fleet_url.rstrip("/")
        self.device_id = device_id
        self.box = Path(box_dir)
        self.updates = updates
        self.health = health
        self.enrollment_token = enrollment_token
        self.interval_s = interval_s
        self._http = http or httpx.Client(timeout=15.0)
        self._state_path = self.box / "fleet-state.json"
        self.outcomes: dict[str, dict[str, Any]] = (json.loads(self._state_path.read_text())
                                                    if self._state_path.exists() else {})
        self._worker: threading.Thread | None = None
        self._retry_at: dict[str, tuple[float, int]] = {}  # campaign -> (monotonic time, attempts)
        self._current: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # -- enrolment ---------------------------------------------------------
    def token(self) -> str:
        path = self.box / "device-token"
        if path.exists():
            return path.read_text().strip()
        if not self.enrollment_token:
            raise UserError("this box is not enrolled: pass --enroll-token (from the fleet operator)")
        resp = self._http.post(f"{self.url}/api/enroll", json={"enrollment_token": self.enrollment_token,
                                                                "device_id": self.device_id})
        if resp.status_code != 201:
            raise UserError(f"enrolment refused by {self.url}: {resp.status_code} {resp.text[:200]}")
        token = resp.json()["device_token"]
        self.box.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        logger.info("enrolled %s with fleet %s", self.device_id, self.url)
        return token

    # -- heartbeats --------------------------------------------------------
    def report(self) -> dict[str, Any] | None:
        if self._current is not None:
            return {"campaign_id": self._current["campaign_id"], "target": self._current["target"],
                    "state": "in_progress", "detail": self.updates.status.state if self.updates else None}
        if self.outcomes:
            cid, last = list(self.outcomes.items())[-1]
            return {"campaign_id": cid, **last}
        return None

    def heartbeat_once(self) -> dict[str, Any] | None:
        """Send one heartbeat; start an assigned update.  Returns the desired update (or None)."""
        running = self.updates.slots.committed() if self.updates else None
        body = {"version": running.version if running else None, "target": running.target if running else None,
                "health": self.health(), "update": self.report()}
        resp = self._http.post(f"{self.url}/api/heartbeat", json=body,
                               headers={"Authorization": f"Bearer {self.token()}"})
        if resp.status_code != 200:
            raise httpx.HTTPStatusError(f"heartbeat: HTTP {resp.status_code} {resp.text[:200]}",
                                        request=resp.request, response=resp)
        desired = resp.json().get("desired")
        retry_at, _ = self._retry_at.get(desired["campaign_id"], (0.0, 0)) if desired else (0.0, 0)
        if desired and self.updates is not None and self._current is None \
                and desired["campaign_id"] not in self.outcomes and time.monotonic() >= retry_at:
            self._current = desired
            self._worker = threading.Thread(target=self._run_update, args=(desired,), daemon=True,
                                            name="edge-update")
            self._worker.start()
        return desired

    def _run_update(self, desired: dict[str, Any]) -> None:
        try:
            status = self.updates.apply(desired["target"], campaign_id=desired["campaign_id"])
            if status.state == "refused" and (status.detail or "").startswith("network:"):
                _, attempts = self._retry_at.get(desired["campaign_id"], (0.0, 0))
                delay = min(300.0, 10.0 * 2 ** attempts)
                self._retry_at[desired["campaign_id"]] = (time.monotonic() + delay, attempts + 1)
                logger.warning("update %s: repository unreachable (%s); retrying in %.0f s", desired["target"],
                               status.detail, delay)
                self._current = None
                return
            ok = status.state == "committed" or (status.state == "refused"
                                                  and (status.detail or "").startswith("already_installed"))
            outcome = {"target": desired["target"], "state": "succeeded" if ok else "failed",
                       "detail": status.detail}
        except Exception as exc:  # an update bug is a failed update, not a dead agent
            logger.exception("update %s crashed", desired["target"])
            outcome = {"target": desired["target"], "state": "failed", "detail": f"{type(exc).__name__}: {exc}"}
        self.outcomes[desired["campaign_id"]] = outcome
        tmp = self._state_path.with_name(".fleet-state.json.tmp")
        tmp.write_text(json.dumps(self.outcomes))
        os.replace(tmp, self._state_path)
        self._current = None
        logger.info("campaign %s: %s (%s)", desired["campaign_id"], outcome["state"], outcome["detail"])
        try:  # tell the fleet at once rather than at the next tick
            self.heartbeat_once()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"

    def start(self) -> FleetClient:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="edge-heartbeat")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def busy(self) -> bool:
        return self._current is not None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.heartbeat_once()
                self.last_error = None
            except UserError:
                raise
            except Exception as exc:  # the fleet being away must not stop the line
                if self.last_error is None:
                    logger.warning("fleet %s unreachable: %s", self.url, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.interval_s)
