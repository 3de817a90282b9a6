"""A line-camera clip for demos and tests: one part per frame, mostly good, some defective.

Written as MJPG in an AVI container with OpenCV, so any OpenCV build reads
it back.  Frames are drawn by the same generator as the dataset (same nuisance
variation); which frames are defective is returned so a test can check verdicts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from npusuite.inspection.generate import DEFECTS, _apply_defect, _nuisance, make_good

logger = logging.getLogger(__name__)


def write_line_video(path: Path, product: str, frames: int = 300, fps: float = 10.0, defect_rate: float = 0.1,
                     seed: int = 0, size_px: int = 64) -> int:
    """Write the clip; returns the number of frames.  See :func:`line_video_labels` for which are NG."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size_px, size_px))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for img in _frames(product, frames, defect_rate, seed, size_px):
        writer.write(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    writer.release()
    logger.info("wrote %s: %d frames of %s at %.0f fps", path, frames, product, fps)
    return frames


def line_video_labels(frames: int = 300, defect_rate: float = 0.1, seed: int = 0) -> list[bool]:
    """Which frames of :func:`write_line_video` with the same arguments carry a defect."""
    rng = np.random.default_rng([seed, 7])
    return [bool(v) for v in rng.random(frames) < defect_rate]


def _frames(product: str, frames: int, defect_rate: float, seed: int, size_px: int):
    labels = line_video_labels(frames, defect_rate, seed)
    rng = np.random.default_rng([seed, 11])
    for defective in labels:
        clean = make_good(product, rng, size_px)
        if defective:
            kind = str(rng.choice(DEFECTS[product]))
            clean, _ = _apply_defect(clean, kind, product, rng)
        yield _nuisance(clean, rng)
