"""The baseline every model must beat: per-pixel mean and standard deviation of the good images.

Rules: fitted on the same good training images as the nets; a pixel's anomaly
is the largest over colour channels of ``|x - mean| / std``; the heatmap is
smoothed with the same box filter and the image score is its maximum, exactly
as :mod:`npusuite.inspection.scoring` does for the nets (so the comparison is
about the model, not the post-processing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass
class PixelStatsBaseline:
    mean: np.ndarray  # H x W x 3
    std: np.ndarray   # H x W x 3
    smooth_px: int = 3

    @classmethod
    def fit(cls, good: np.ndarray, smooth_px: int = 3, min_std: float = 0.02) -> PixelStatsBaseline:
        """``good``: N x H x W x 3 float images in [0, 1]."""
        return cls(good.mean(axis=0), np.maximum(good.std(axis=0), min_std), smooth_px)

    def heatmaps(self, images: np.ndarray) -> np.ndarray:
        z = (np.abs(images - self.mean[None]) / self.std[None]).max(axis=3)
        t = torch.from_numpy(z.astype(np.float32))[:, None]
        if self.smooth_px > 1:
            t = F.avg_pool2d(t, self.smooth_px, stride=1, padding=self.smooth_px // 2, count_include_pad=False)
        return t[:, 0].numpy()

    def scores(self, images: np.ndarray) -> np.ndarray:
        return self.heatmaps(images).reshape(len(images), -1).max(axis=1)
