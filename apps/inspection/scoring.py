"""Pure scoring policy: logits -> heatmap -> image score -> boxes -> threshold.

Rules (shared by training-time calibration, offline scoring and the live line,
so all three agree bit for bit):

* heatmap = ``sigmoid(logits)`` smoothed with a ``smooth_px`` x ``smooth_px``
  box filter (a single hot pixel is not a defect); values in [0, 1].
* image score = the heatmap's maximum.  A part is NG exactly when
  ``score >= threshold``.
* boxes = bounding boxes ``(x, y, w, h)`` of the 8-connected components of
  ``heatmap >= threshold``, largest first; so an NG image always has at least
  one box and an OK image has none.
* :func:`calibrate_threshold` picks the threshold from scores of good images
  held back from training: the smallest value that rejects at most
  ``target_frr`` of them (ties resolved towards fewer rejects).

No I/O here.  torch is imported by the two torch functions only, so the
numpy side (boxes, calibration) and the ONNX inspector path that uses it
run where torch is not installed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from npusuite.inspection.records import Box

if TYPE_CHECKING:
    import torch


def heatmaps(logits: torch.Tensor, smooth_px: int = 3) -> torch.Tensor:
    """``N x 1 x H x W`` logits -> ``N x H x W`` float32 heatmaps in [0, 1]."""
    import torch
    from torch.nn import functional as F

    heat = torch.sigmoid(logits.float())
    if smooth_px > 1:
        heat = F.avg_pool2d(heat, smooth_px, stride=1, padding=smooth_px // 2, count_include_pad=False)
    return heat[:, 0]


def image_scores(heat: torch.Tensor) -> torch.Tensor:
    return heat.flatten(1).amax(dim=1)


def boxes_from_heatmap(heat: np.ndarray, threshold: float, min_area_px: int = 1) -> list[Box]:
    """Boxes of the connected components of ``heat >= threshold`` (largest area first)."""
    import cv2

    binary = (heat >= threshold).astype(np.uint8)
    if not binary.any():
        return []
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    comps = [tuple(int(v) for v in stats[i, :5]) for i in range(1, n) if stats[i, 4] >= min_area_px]
    comps.sort(key=lambda c: -c[4])
    return [(x, y, w, h) for x, y, w, h, _ in comps]


def calibrate_threshold(good_scores: np.ndarray | list[float], target_frr: float) -> float:
    """Threshold that rejects at most ``target_frr`` of ``good_scores``.

    Raises ValueError on an empty list or a target outside [0, 1).
    """
    scores = np.sort(np.asarray(good_scores, dtype=np.float64))
    if scores.size == 0:
        raise ValueError("need at least one held-back good score to calibrate")
    if not 0.0 <= target_frr < 1.0:
        raise ValueError("target_frr must be in [0, 1)")
    allowed = math.floor(target_frr * scores.size)  # good images we may reject
    # Everything strictly above the (n - allowed)-th score is rejected; put the
    # threshold just above it so that score itself is accepted.
    kth = scores[scores.size - allowed - 1]
    return float(np.nextafter(kth, np.inf))
