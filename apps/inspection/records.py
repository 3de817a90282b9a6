"""Typed records that cross the inspection pipeline's boundaries.

Rules:

* A :class:`Frame` is created only by a source (or by a caller that read an
  image itself); once created it is trusted downstream: ``image`` is an
  ``HxWx3`` ``uint8`` BGR array (OpenCV order), ``timestamp`` is UTC wall-clock
  seconds when the frame was captured, ``seq`` counts frames the source has
  read (gaps in ``seq`` downstream are frames dropped by the bounded queue).
* An :class:`Inspection` is the one result of inspecting one frame.
  ``defective`` is exactly ``score >= threshold``; ``heatmap`` is a
  ``float32`` array of the frame's height and width with per-pixel anomaly
  scores in [0, 1] on the same scale as ``threshold``; ``boxes`` are
  ``(x, y, w, h)`` in frame pixels, one per connected component of
  ``heatmap >= pixel_threshold``.  ``to_json`` gives the inspection score
  line (plus optional extra fields); arrays are never put in JSON.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]


def rfc3339(ts_s: float) -> str:
    """UTC RFC 3339 with microseconds and a ``Z``, e.g. ``2026-03-02T00:01:16.966969Z``."""
    return dt.datetime.fromtimestamp(ts_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image.

    ``image``: HxWx3 uint8, BGR.  ``timestamp``: capture time, UTC epoch seconds.
    ``source``: what it came from (camera index, URL, file path).  ``seq``: the
    source's running frame number (from 0; keeps counting across reconnects).
    ``name``: for image-folder sources, the file's path relative to the folder.
    """

    image: np.ndarray
    timestamp: float
    source: str
    seq: int
    name: str | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Frame.image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}")


@dataclass(frozen=True, slots=True)
class Inspection:
    """The verdict on one frame."""

    frame: Frame
    score: float
    threshold: float
    heatmap: np.ndarray = field(repr=False)
    boxes: list[Box]
    latency_ms: float
    model: str  # name@version
    product: str | None = None

    @property
    def defective(self) -> bool:
        return self.score >= self.threshold

    @property
    def verdict(self) -> str:
        """``"NG"`` for a defective part, ``"OK"`` otherwise."""
        return "NG" if self.defective else "OK"

    def to_json(self, **extra: Any) -> dict[str, Any]:
        """The score line of docs/contracts.md (``image`` = frame name or source) plus timing fields and ``extra``."""
        return {
            "image": self.frame.name if self.frame.name is not None else self.frame.source,
            "score": round(float(self.score), 6),
            "defective": self.defective,
            "boxes": [list(map(int, b)) for b in self.boxes],
            "model": self.model,
            "threshold": round(float(self.threshold), 6),
            "latency_ms": round(float(self.latency_ms), 3),
            "seq": self.frame.seq,
            "timestamp": rfc3339(self.frame.timestamp),
            **extra,
        }
