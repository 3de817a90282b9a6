"""The good images stored with a model (``calibration.safetensors``) as frames: one reader for every user.

``inspection train`` stores up to 32 held-back good images as an ``images``
tensor ``N x 3 x H x W``: float32 in [0, 1] (what the nets take), or uint8.
:func:`calibration_images` returns them as uint8 BGR ``N x H x W x 3`` (what
cameras give), :func:`calibration_frames` as :class:`~npusuite.inspection.records.Frame`
records, :func:`calibration_batch` as the nets' float input.  The export's
parity check and int8 calibration, and the edge agent's default health-check
samples, read them here.  A missing, corrupt
or misshapen file raises :class:`UserError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npusuite.inspection.modelcard import CALIBRATION
from npusuite.platform.errors import UserError


def calibration_images(folder: Path, limit: int | None = None) -> np.ndarray:
    """uint8 ``N x H x W x 3`` good images stored in ``folder``; raises UserError when there are none."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(folder) / CALIBRATION
    if not path.is_file():
        raise UserError(f"{folder} stores no {CALIBRATION}")
    try:
        images = load_file(str(path))["images"]
    except (SafetensorError, KeyError, OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable calibration images: {str(exc)[:200]}") from None
    if images.ndim != 4 or images.shape[1] != 3 or not len(images) or images.dtype not in (np.uint8, np.float32):
        raise UserError(f"{path}: calibration images are {images.dtype} {list(images.shape)}, "
                        f"not N x 3 x H x W float32/uint8")
    images = images[:limit]
    if images.dtype == np.float32:
        if not np.isfinite(images).all():
            raise UserError(f"{path}: calibration images hold NaN or inf")
        images = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def calibration_frames(folder: Path, limit: int | None = None) -> list:
    """The stored good images as frames named ``calibration-NNN``."""
    from npusuite.inspection.records import Frame

    return [Frame(image=img, timestamp=0.0, source=str(folder), seq=i, name=f"calibration-{i:03d}")
            for i, img in enumerate(calibration_images(folder, limit))]


def calibration_batch(folder: Path, limit: int | None = None) -> np.ndarray:
    """The stored good images as the nets' input: float32 ``N x 3 x H x W`` in [0, 1] (int8 calibration)."""
    return calibration_images(folder, limit).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
