"""From an inspection verdict to the upstream ingest record.

Rules:

* The record id is the idempotency key everywhere downstream.  It is
  deterministic for replayable sources (an image folder or a video file:
  ``DEVICE:SOURCE:FRAME``), so a restarted agent recognises frames it already
  recorded; for live sources (camera, stream) it includes the agent's boot
  number (``DEVICE:boot-N:SEQ``), because their ``seq`` restarts at 0.
* The payload is an
  :class:`~npusuite.platform.contracts.inspection.InspectionResult` (the
  review app's ingest body and the ``inspection-results`` Kafka value; see
  ``docs/contracts.md``), as its JSON object, since the outbox stores JSON.
  The heatmap (the anomaly map in the JET colour map) is only attached to NG
  results (it is what a QC engineer looks at; OK results stay small).
"""

from __future__ import annotations

import base64
from pathlib import PurePath
from typing import Any

import numpy as np

from npusuite.platform.contracts.inspection import Verdict, build_inspection_result


def result_id(device_id: str, source: str, replayable: bool, boot: int, seq: int, name: str | None) -> str:
    """The idempotency id of the result for one frame (see the module rules)."""
    if replayable:
        return f"{device_id}:{PurePath(source).name}:{name if name is not None else seq}"
    return f"{device_id}:boot-{boot}:{seq}"


def png_bytes(image: np.ndarray) -> bytes:
    """PNG-encode an HxW or HxWx3 uint8 image; raises ValueError when OpenCV cannot."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def png_b64(image: np.ndarray) -> str:
    """:func:`png_bytes`, base64."""
    return base64.b64encode(png_bytes(image)).decode()


def heatmap_png(heatmap: np.ndarray) -> bytes:
    import cv2

    scaled = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    return png_bytes(cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET))


def ingest_payload(inspection: Verdict, record_id: str, line: str, product: str | None,
                   model: str | None = None) -> dict[str, Any]:
    """The ``InspectionResult`` for an ``npusuite.inspection.records.Inspection`` (``model`` overrides its
    own) as its JSON object, ready for the outbox."""
    record = build_inspection_result(
        inspection, record_id=record_id, line=line, product=product, model=model,
        image_png=png_bytes(inspection.frame.image),
        heatmap_png=heatmap_png(inspection.heatmap) if inspection.defective else None)
    return record.model_dump(mode="json")
