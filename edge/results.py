"""From an inspection verdict to the upstream ingest record (interface 4).

Rules:

* The record id is the idempotency key everywhere downstream.  It is
  deterministic for replayable sources (an image folder or a video file:
  ``DEVICE:SOURCE:FRAME``), so a restarted agent recognises frames it already
  recorded; for live sources (camera, stream) it includes the agent's boot
  number (``DEVICE:boot-N:SEQ``), because their ``seq`` restarts at 0.
* The payload is exactly the review app's ingest body: ``id, timestamp, line,
  product, image_png_b64, heatmap_png_b64, score, threshold, defective,
  boxes, model``.  The heatmap is only attached to NG results (it is what a QC
  engineer looks at; OK results stay small).
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import PurePath
from typing import Any

import numpy as np


def rfc3339(ts_s: float) -> str:
    return dt.datetime.fromtimestamp(ts_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def result_id(device_id: str, source: str, replayable: bool, boot: int, seq: int, name: str | None) -> str:
    """The idempotency id of the result for one frame (see the module rules)."""
    if replayable:
        return f"{device_id}:{PurePath(source).name}:{name if name is not None else seq}"
    return f"{device_id}:boot-{boot}:{seq}"


def png_b64(image: np.ndarray) -> str:
    """PNG-encode an HxW or HxWx3 uint8 image; raises ValueError when OpenCV cannot."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode()


def heatmap_png_b64(heatmap: np.ndarray) -> str:
    import cv2

    scaled = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    return png_b64(cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET))


def ingest_payload(inspection: Any, record_id: str, line: str, product: str | None,
                   model: str | None = None) -> dict[str, Any]:
    """The interface-4 body for an ``npusuite.inspection.records.Inspection`` (``model`` overrides its own)."""
    defective = bool(inspection.defective)
    return {
        "id": record_id,
        "timestamp": rfc3339(inspection.frame.timestamp),
        "line": line,
        "product": product if product is not None else inspection.product,
        "image_png_b64": png_b64(inspection.frame.image),
        "heatmap_png_b64": heatmap_png_b64(inspection.heatmap) if defective else None,
        "score": float(inspection.score),
        "threshold": float(inspection.threshold),
        "defective": defective,
        "boxes": [[int(v) for v in b] for b in inspection.boxes],
        "model": model or inspection.model,
    }
