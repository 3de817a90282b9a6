"""Heatmap overlay images for people: what ``score --save-heatmaps`` writes and the evaluation figure shows.

Rules:

* The image keeps its source resolution: the heatmap (values in [0, 1],
  already resized to the image by the inspector) is drawn with OpenCV's JET
  colour map blended over it, and the outline of ``heat >= threshold`` (the
  pixels that make the part NG) is drawn in white.
* A colour bar (0 at the bottom, 1 at the top, the threshold marked) is
  added to the right and a header line with the score, the threshold and
  the verdict above; they widen the canvas (never the overlay) to at least
  :data:`MIN_CANVAS_PX` so the text stays legible on small images.
* Pure: arrays in, a BGR uint8 array out; :func:`save_overlay` is the only
  writer.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MIN_CANVAS_PX = 260
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colourise(heat: np.ndarray) -> np.ndarray:
    """``HxW`` values in [0, 1] -> ``HxWx3`` BGR uint8 (JET)."""
    return cv2.applyColorMap(np.clip(heat * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)


def overlay(image: np.ndarray, heat: np.ndarray, threshold: float | None = None, alpha: float = 0.45) -> np.ndarray:
    """The heatmap blended over ``image`` (same ``HxW``), with the outline of ``heat >= threshold``."""
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} does not match the image {image.shape[:2]}")
    out = cv2.addWeighted(image, 1 - alpha, colourise(heat), alpha, 0)
    if threshold is not None:
        binary = (heat >= threshold).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def _colour_bar(height: int, threshold: float | None) -> np.ndarray:
    bar_w, label_w = 16, 44
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(bar_w, axis=1)
    panel = np.full((height, bar_w + label_w, 3), 32, np.uint8)
    panel[:, :bar_w] = colourise(ramp)
    scale = 0.35
    for value in (0.0, 0.5, 1.0):
        y = int(round((1 - value) * (height - 1)))
        cv2.putText(panel, f"{value:.1f}", (bar_w + 3, min(height - 3, max(9, y + 4))), _FONT, scale,
                    (230, 230, 230), 1, cv2.LINE_AA)
    if threshold is not None:
        y = int(round((1 - min(max(threshold, 0.0), 1.0)) * (height - 1)))
        cv2.line(panel, (0, y), (bar_w + 4, y), (255, 255, 255), 1)
        cv2.putText(panel, "thr", (bar_w + 22, min(height - 3, max(9, y + 4))), _FONT, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return panel


def render(image: np.ndarray, heat: np.ndarray, score: float, threshold: float, label: str | None = None) -> np.ndarray:
    """Overlay + colour bar + a header ``score S (threshold T): NG|OK``; BGR uint8."""
    body = overlay(image, heat, threshold)
    h, w = body.shape[:2]
    bar = _colour_bar(h, threshold)
    header_h = 22
    width = max(w + bar.shape[1], MIN_CANVAS_PX)
    canvas = np.full((h + header_h, width, 3), 32, np.uint8)
    canvas[header_h:, :w] = body
    canvas[header_h:, w:w + bar.shape[1]] = bar
    verdict = "NG" if score >= threshold else "OK"
    text = f"score {score:.4f} (thr {threshold:.4f}): {verdict}"
    if label:
        text = f"{label}  {text}"
    colour = (80, 80, 255) if verdict == "NG" else (120, 220, 120)
    cv2.putText(canvas, text, (4, 15), _FONT, 0.4, colour, 1, cv2.LINE_AA)
    return canvas


def save_overlay(path: Path, image: np.ndarray, heat: np.ndarray, score: float, threshold: float,
                 label: str | None = None) -> Path:
    """Write :func:`render` as PNG at ``path`` (parents created).  Raises OSError when it cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render(image, heat, score, threshold, label)):
        raise OSError(f"cannot write {path}")
    return path
