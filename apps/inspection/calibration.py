"""Threshold calibration that holds on fresh good images, not only on the held-back ones.

Why the plain rule is not enough: :func:`~npusuite.inspection.scoring.calibrate_threshold`
puts the threshold just above the ``(1 - target_frr)`` empirical quantile of the
held-back good scores.  With 50-80 held-back images and a 1% target that is
just above their maximum, and a fresh good part exceeds the maximum of ``n``
others with probability ``1 / (n + 1)`` (2% for 50 images) -- more when the
maximum itself is a lucky low draw.

Why not a fit of the whole distribution: a Gumbel fitted by moments to all
held-back scores (the rule before) lets the bulk set the tail; a few high
good scores then widen the fit and put the threshold far above every good
score, losing faint defects (recall 0.68 on the acceptance product).

Rules (pure, no I/O):

* Scores are mapped to logits (``log(s / (1 - s))``, clipped away from 0
  and 1), where heatmap maxima have roughly exponential upper tails.
* Peaks over a threshold: the ``tail_fraction`` highest logits (at least
  ``min_tail``) are the tail; with ``u`` the next highest and ``m`` the tail
  size out of ``n``, their excesses over ``u`` are fitted by an exponential
  of mean ``scale``, and the ``(1 - target_frr)`` quantile is
  ``u + scale * log((m / n) / target_frr)``.  Only the upper tail matters.
* The quantile is recomputed on ``bootstrap`` resamples of the held-back
  scores; the threshold is the larger of the point estimate and the
  resamples' ``confidence`` quantile (:data:`CONFIDENCE`), and never lower than
  the empirical rule at ``HELDBACK_TOLERANCE`` x ``target_frr`` (1.5x, the
  acceptance tolerance): it rejects at most that share of the held-back
  images, so with 80 of them one high good image (1.25%) does not set the
  threshold by itself -- the tail fit does.
* :func:`calibrate` returns a :class:`Calibration` record: the threshold and
  both of its ingredients, for the model card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from npusuite.inspection.scoring import calibrate_threshold

_EPS = 1e-7
METHOD = "exponential-tail-bootstrap"
#: the bootstrap bound's default confidence.  0.90 since session 18 (0.75 before): in the exchangeable simulation
#: (80 held back, Gumbel logits; bench/inspection_calibration.py) the share of draws within 1.5x the target is
#: 0.865 / 0.935 / 0.95 / 0.99 at 0.75 / 0.85 / 0.90 / 0.95, and 0.90 is the smallest reaching 0.95.  It became
#: affordable once the normaliser's edge correction separated defects from good parts (recall 1.00 on 11 seeds).
CONFIDENCE = 0.9
#: the threshold rejects at most this multiple of ``target_frr`` of the held-back good images.
HELDBACK_TOLERANCE = 1.5


@dataclass(frozen=True)
class Calibration:
    threshold: float
    method: str
    target_frr: float
    confidence: float
    images: int           # held-back good images it was fitted on
    empirical: float      # the plain empirical-quantile threshold at target_frr (for comparison)
    fitted: float         # the tail-fit quantile on all held-back scores (before the bootstrap bound)
    heldback_frr: float   # share of held-back images at or above the threshold


def _logit(scores: np.ndarray) -> np.ndarray:
    s = np.clip(scores.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(s) - np.log1p(-s)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def tail_quantile(logits: np.ndarray, p: float, tail_fraction: float = 0.3, min_tail: int = 5) -> np.ndarray:
    """The ``p`` quantile from an exponential fit of the upper tail (module rules); ``logits``: 1-D, or 2-D
    with one sample per row (one quantile per row)."""
    z = -np.sort(-np.atleast_2d(logits), axis=-1)  # descending
    n = z.shape[-1]
    m = min(n - 1, max(min_tail, int(round(tail_fraction * n))))
    u = z[:, m]
    scale = (z[:, :m] - u[:, None]).mean(axis=-1)
    q = u + scale * math.log((m / n) / (1.0 - p))
    return q if np.ndim(logits) == 2 else q[0]


def calibrate(good_scores: np.ndarray | list[float], target_frr: float, confidence: float = CONFIDENCE,
              bootstrap: int = 400, seed: int = 0, tail_fraction: float = 0.3) -> Calibration:
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
    fitted = float(tail_quantile(z, 1.0 - target_frr, tail_fraction))
    rng = np.random.default_rng(seed)
    boots = tail_quantile(z[rng.integers(0, z.size, (bootstrap, z.size))], 1.0 - target_frr, tail_fraction)
    upper = max(fitted, float(np.quantile(boots, confidence)))
    floor = calibrate_threshold(scores, min(0.99, HELDBACK_TOLERANCE * target_frr))
    threshold = max(floor, _sigmoid(upper))
    return Calibration(threshold=float(threshold), method=METHOD, target_frr=target_frr, confidence=confidence,
                       images=int(scores.size), empirical=empirical, fitted=_sigmoid(fitted),
                       heldback_frr=float((scores >= threshold).mean()))
