"""The NG archive: every defective part's image, heatmap and JSON record on disk, with bounded retention.

Layout: ``ROOT/<YYYYmmddTHHMMSS.ffffff>Z_<seq>/`` holding ``image.png``,
``heatmap.png`` (the heatmap blended over the image, boxes drawn) and
``record.json`` (the inspection's JSON line plus ``line``).

Rules:

* A record folder is written under a temporary name and renamed into place,
  so a reader (or the retention sweep) never sees a half-written record.
* Retention: after each save the oldest records are deleted until at most
  ``max_records`` remain and their total size is at most ``max_bytes``.
  The newest record is always kept.  Folder names sort by capture time.
* Only NG inspections are archived; :meth:`NgArchive.save` refuses an OK one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npusuite.inspection.inspector import heatmap_overlay
from npusuite.inspection.records import Inspection
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveConfig:
    root: Path
    max_records: int = 1000
    max_bytes: int = 500 * 1024 * 1024
    line: str = "line-1"

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_bytes < 1:
            raise UserError("archive max_records and max_bytes must be >= 1")


def encode_png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


class NgArchive:
    """Thread-safe writer of NG records with retention."""

    def __init__(self, cfg: ArchiveConfig) -> None:
        self.cfg = cfg
        self.root = Path(cfg.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {p.name: _folder_bytes(p) for p in self._records()}
        self.deleted = 0

    def _records(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def records(self) -> list[Path]:
        """Record folders, oldest first."""
        with self._lock:
            return self._records()

    def save(self, inspection: Inspection) -> Path:
        """Write one NG record and apply retention; returns its folder.  Raises ValueError for an OK part."""
        if not inspection.defective:
            raise ValueError("only NG inspections are archived")
        stamp = dt.datetime.fromtimestamp(inspection.frame.timestamp, tz=dt.UTC).strftime("%Y%m%dT%H%M%S.%f")
        name = f"{stamp}Z_{inspection.frame.seq:09d}"
        with self._lock:
            final = self.root / name
            tmp = self.root / f".tmp-{name}"
            tmp.mkdir(parents=True, exist_ok=True)
            (tmp / "image.png").write_bytes(encode_png(inspection.frame.image))
            (tmp / "heatmap.png").write_bytes(encode_png(heatmap_overlay(inspection)))
            (tmp / "record.json").write_text(json.dumps(inspection.to_json(line=self.cfg.line), indent=2) + "\n")
            if final.exists():  # the same frame saved twice: keep the first
                shutil.rmtree(tmp)
                return final
            os.replace(tmp, final)
            self._sizes[name] = _folder_bytes(final)
            self._apply_retention()
        logger.debug("archived NG part %d at %s", inspection.frame.seq, final)
        return final

    def _apply_retention(self) -> None:
        names = sorted(self._sizes)
        total = sum(self._sizes.values())
        while len(names) > 1 and (len(names) > self.cfg.max_records or total > self.cfg.max_bytes):
            oldest = names.pop(0)
            total -= self._sizes.pop(oldest)
            shutil.rmtree(self.root / oldest, ignore_errors=True)
            self.deleted += 1


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
