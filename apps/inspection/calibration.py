"""Threshold calibration that holds on fresh good images, not only on the held-back ones.

Why the plain rule is not enough: :func:`~npusuite.inspection.scoring.calibrate_threshold`
puts the threshold just above the ``(1 - target_frr)`` empirical quantile of the
held-back good scores.  With 40-60 held-back images and a 1% target that is
just above their maximum, and a fresh good part exceeds the maximum of ``n``
others with probability ``1 / (n + 1)`` (2.4% for 40 images) -- more when
the maximum itself is a lucky low draw.

Rules (pure, no I/O):

* An image score is the maximum of a smoothed heatmap, so its upper tail is
  that of a maximum: scores are mapped to logits (``log(s / (1 - s))``,
  clipped away from 0 and 1) and a Gumbel (max-type extreme-value)
  distribution is fitted to them by the method of moments.
* The fitted ``(1 - target_frr)`` quantile is computed on ``bootstrap``
  resamples of the held-back scores; the threshold is its ``confidence``
  upper quantile (default 0.9: nine times in ten the fitted quantile of the
  true score distribution is below it).
* The threshold is never lower than the empirical rule's, so it rejects at
  most ``target_frr`` of the held-back images.
* :func:`calibrate` returns a :class:`Calibration` record: the threshold and
  both of its ingredients, for the model card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from npusuite.inspection.scoring import calibrate_threshold

_EULER = 0.5772156649015329
_EPS = 1e-7
METHOD = "gumbel-bootstrap-ucb"


@dataclass(frozen=True)
class Calibration:
    threshold: float
    method: str
    target_frr: float
    confidence: float
    images: int           # held-back good images it was fitted on
    empirical: float      # the plain empirical-quantile threshold
    fitted: float         # the Gumbel quantile on all held-back scores (before the bootstrap bound)
    heldback_frr: float   # share of held-back images at or above the threshold


def _logit(scores: np.ndarray) -> np.ndarray:
    s = np.clip(scores.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(s) - np.log1p(-s)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def gumbel_quantile(logits: np.ndarray, p: float) -> float:
    """The ``p`` quantile of a Gumbel fitted to ``logits`` by moments (``logits``: 1-D, or 2-D with one sample
    per row, which returns one quantile per row)."""
    mean, sd = logits.mean(axis=-1), logits.std(axis=-1, ddof=1)
    beta = sd * math.sqrt(6.0) / math.pi
    mu = mean - _EULER * beta
    return mu - beta * math.log(-math.log(p))


def calibrate(good_scores: np.ndarray | list[float], target_frr: float, confidence: float = 0.9,
              bootstrap: int = 400, seed: int = 0) -> Calibration:
    """See the module rules.  Raises ValueError for fewer than 3 scores or targets/confidences out of range."""
    scores = np.asarray(good_scores, dtype=np.float64)
    if scores.size < 3:
        raise ValueError("need at least 3 held-back good scores to fit a tail")
    if not 0.0 < target_frr < 1.0:
        raise ValueError("target_frr must be in (0, 1)")
    if not 0.5 <= confidence < 1.0:
        raise ValueError("confidence must be in [0.5, 1)")
    empirical = calibrate_threshold(scores, target_frr)
    z = _logit(scores)
    fitted = gumbel_quantile(z, 1.0 - target_frr)
    rng = np.random.default_rng(seed)
    boots = gumbel_quantile(z[rng.integers(0, z.size, (bootstrap, z.size))], 1.0 - target_frr)
    upper = float(np.quantile(boots, confidence))
    threshold = max(empirical, _sigmoid(upper))
    return Calibration(threshold=float(threshold), method=METHOD, target_frr=target_frr, confidence=confidence,
                       images=int(scores.size), empirical=empirical, fitted=_sigmoid(fitted),
                       heldback_frr=float((scores >= threshold).mean()))
