"""A/B slots on the box, as Mender/RAUC do it: two install slots and one state file.

Layout under the box folder::

    BOX/state.json             the slot state, replaced atomically (temp file, fsync, rename)
    BOX/slots/a/bundle/        an unpacked bundle (bundle.json + model/ ...)
    BOX/slots/a/download/      partial downloads (kept across restarts for resume)
    BOX/slots/b/...

Rules:

* Installing only ever touches the **inactive** slot; the active one keeps
  running until the switch.
* The switch is one atomic rename of ``state.json``: ``active`` becomes the new
  slot with ``trial = true``; ``committed`` still names the old one.
* A trial ends in :meth:`commit` (health check passed) or :meth:`rollback`
  (``active`` goes back to ``committed``, the failed slot is marked ``bad``).
* If the agent dies during a trial, :meth:`recover` on the next start rolls
  back: an uncommitted slot is never booted twice.  So the box always has the
  committed slot to run, once it has ever committed one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

SLOTS = ("a", "b")


class BundleError(UserError):
    """A bundle file is not a valid update bundle (bad archive, missing bundle.json, unsafe paths)."""


@dataclass
class SlotInfo:
    status: str = "empty"  # empty | installed | good | bad
    target: str | None = None
    version: str | None = None


@dataclass
class SlotState:
    active: str | None = None
    committed: str | None = None
    trial: bool = False
    slots: dict[str, SlotInfo] = field(default_factory=lambda: {s: SlotInfo() for s in SLOTS})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SlotState:
        return cls(active=data.get("active"), committed=data.get("committed"), trial=bool(data.get("trial")),
                   slots={s: SlotInfo(**data.get("slots", {}).get(s, {})) for s in SLOTS})


class SlotManager:
    """Owns ``BOX/state.json`` and the two slot folders."""

    def __init__(self, box_dir: Path) -> None:
        self.dir = Path(box_dir)
        for s in SLOTS:
            (self.dir / "slots" / s / "download").mkdir(parents=True, exist_ok=True)
        self._path = self.dir / "state.json"
        self.state = SlotState.from_json(json.loads(self._path.read_text())) if self._path.exists() else SlotState()

    # -- queries -----------------------------------------------------------
    def bundle_dir(self, slot: str) -> Path:
        return self.dir / "slots" / slot / "bundle"

    def download_dir(self, slot: str) -> Path:
        return self.dir / "slots" / slot / "download"

    @property
    def inactive(self) -> str:
        return "b" if self.state.active == "a" else "a"

    def running(self) -> SlotInfo | None:
        """The slot the box runs now (trial or committed), or None before the first install."""
        return self.state.slots[self.state.active] if self.state.active else None

    def committed(self) -> SlotInfo | None:
        return self.state.slots[self.state.committed] if self.state.committed else None

    # -- transitions -------------------------------------------------------
    def install(self, bundle_file: Path, target: str, version: str) -> Path:
        """Unpack ``bundle_file`` into the inactive slot; returns its bundle folder.  Raises BundleError."""
        slot = self.inactive
        dest = self.bundle_dir(slot)
        staging = dest.with_name("bundle.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            with tarfile.open(bundle_file, "r:*") as tar:
                tar.extractall(staging, filter="data")  # refuses absolute paths, .., device files
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleError(f"{target}: not a valid bundle archive ({exc})") from exc
        if not (staging / "bundle.json").is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleError(f"{target}: bundle has no bundle.json")
        self.state.slots[slot] = SlotInfo(status="installing", target=target, version=version)
        self._save()
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        self.state.slots[slot] = SlotInfo(status="installed", target=target, version=version)
        self._save()
        logger.info("installed %s %s into slot %s", target, version, slot)
        return dest

    def switch(self) -> str:
        """Make the inactive (freshly installed) slot active, on trial.  Returns the slot name."""
        slot = self.inactive
        if self.state.slots[slot].status != "installed":
            raise RuntimeError(f"slot {slot} holds no installed bundle")
        self.state.active = slot
        self.state.trial = True
        self._save()
        logger.info("switched to slot %s on trial (committed slot: %s)", slot, self.state.committed)
        return slot

    def commit(self) -> None:
        self.state.committed = self.state.active
        self.state.trial = False
        self.state.slots[self.state.active].status = "good"
        self._save()
        logger.info("committed slot %s (%s)", self.state.active, self.state.slots[self.state.active].version)

    def rollback(self, reason: str) -> None:
        failed = self.state.active
        if failed is not None:
            self.state.slots[failed].status = "bad"
        self.state.active = self.state.committed
        self.state.trial = False
        self._save()
        logger.warning("rolled back from slot %s to %s: %s", failed, self.state.committed, reason)

    def recover(self) -> bool:
        """At start-up: a slot still on trial never passed its health check, so roll back.  True if it did."""
        if self.state.trial:
            self.rollback("agent restarted during the health check")
            return True
        return False

    def _save(self) -> None:
        tmp = self._path.with_name(".state.json.tmp")
        with tmp.open("w") as f:
            json.dump(self.state.to_json(), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
