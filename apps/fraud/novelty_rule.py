"""How the novelty tier's score combines with the supervised score: the rule a novelty model's card documents.

Kept apart from :mod:`npusuite.fraud.novelty` (the torch model) so the pure
tiered scorer can apply it without importing torch.  Rules:

- The card's ``combination`` is a :class:`NoveltyRule`; its ``calibration``
  holds quantiles of the novelty score on held-out legitimate transactions.
  :meth:`NoveltyConfig.from_card` refuses a card that lacks the quantiles the
  rule names, or whose quantiles are not finite and increasing.
- ``t = (novelty - q[review_quantile]) / (q[scale_quantile] - q[review_quantile])``.
  ``t >= 0`` (novelty above that share of legitimate behaviour): at least
  ``review``, score ``max(p, review + (decline - review) * t / (1 + t))`` on
  the fast card's thresholds.  ``t < 0``: nothing changes.  Novelty alone
  never declines.
- :func:`tail_log_odds` and :func:`empirical_tail_log_odds` turn a detector's
  score into legitimate tail evidence, ``log(0.5 / q)``; a novelty model with
  a sequence detector takes the larger of its two detectors' evidence as its
  novelty (:mod:`npusuite.fraud.novelty`), which the rule reads as any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class NoveltyRule(BaseModel):
    """How the scorer combines novelty with the supervised score (the card's ``combination``).

    ``t = (novelty - q[review_quantile]) / (q[scale_quantile] - q[review_quantile])`` on the card's legitimate
    quantiles ``q``.  When ``t >= 0`` the transaction is at least reviewed and its score is
    ``max(p, review + (decline - review) * t / (1 + t))`` (the fast card's thresholds): above every supervised
    score of a review, below a decline, ordered by novelty.  Below that, nothing changes.  Novelty alone never
    declines: what no label has shown goes to a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(default="max-review", pattern=r"^max-review$")
    review_quantile: float = Field(default=0.998, gt=0.5, lt=1.0)
    scale_quantile: float = Field(default=0.9999, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> NoveltyRule:
        if self.scale_quantile <= self.review_quantile:
            raise ValueError("scale_quantile must be above review_quantile")
        return self


@dataclass(frozen=True)
class NoveltyConfig:
    """The card's calibration and combination, resolved to numbers (refused when incomplete)."""

    rule: NoveltyRule
    review_level: float
    scale_level: float

    @classmethod
    def from_card(cls, card: dict) -> NoveltyConfig:
        """Raises ValueError naming what the card lacks."""
        rule = NoveltyRule.model_validate(card.get("combination") or {})
        quantiles = (card.get("calibration") or {}).get("quantiles") or {}
        try:
            review, scale = float(quantiles[str(rule.review_quantile)]), float(quantiles[str(rule.scale_quantile)])
        except KeyError as exc:
            raise ValueError(f"card has no calibration quantile {exc} (has {sorted(quantiles)})") from None
        if not (math.isfinite(review) and math.isfinite(scale)) or scale <= review:
            raise ValueError(f"calibration quantiles must be finite and increasing (got {review}, {scale})")
        return cls(rule, review, scale)

    def excess(self, novelty: np.ndarray) -> np.ndarray:
        """``t`` of :class:`NoveltyRule` per row (negative: within legitimate behaviour; NaN counts as 0)."""
        t = (np.asarray(novelty, dtype=np.float64) - self.review_level) / (self.scale_level - self.review_level)
        return np.nan_to_num(t, nan=0.0, posinf=1e6, neginf=-1e6)


def combined_score(p: float, t: float, review: float, decline: float) -> float:
    """The supervised ``p`` raised by novelty excess ``t`` (see :class:`NoveltyRule`)."""
    if t < 0:
        return p
    return max(p, review + (decline - review) * (t / (1.0 + t)))


#: :func:`tail_log_odds` never goes beyond a legitimate tail share of this (a score past the card's last
#: quantile is extrapolated along the last segment up to here).
TAIL_FLOOR = 1e-6


def tail_log_odds(novelty: np.ndarray, quantiles: dict[str, float]) -> np.ndarray:
    """``log(0.5 / q)`` where ``q`` is the share of legitimate transactions (the novelty card's calibration
    quantiles, held-out legitimate rows) with at least this novelty; 0 at or below their median.  Piecewise
    linear in the score between the card's quantiles, extrapolated along the last segment beyond them and
    capped at ``q =`` :data:`TAIL_FLOOR`.  NaN counts as 0."""
    levels = sorted((float(k), float(v)) for k, v in quantiles.items() if float(k) >= 0.5)
    if len(levels) < 2:
        raise ValueError(f"need the median and at least one higher quantile, got {sorted(quantiles)}")
    scores = np.maximum.accumulate(np.array([v for _, v in levels]))
    odds = np.log(0.5 / (1.0 - np.array([k for k, _ in levels])))
    x = np.nan_to_num(np.asarray(novelty, dtype=np.float64), nan=-np.inf, posinf=np.finfo(np.float64).max)
    out = np.interp(x, scores, odds, left=0.0, right=odds[-1])
    slope = (odds[-1] - odds[-2]) / max(scores[-1] - scores[-2], 1e-12)
    beyond = x > scores[-1]
    out[beyond] = np.minimum(odds[-1] + slope * (x[beyond] - scores[-1]), np.log(0.5 / TAIL_FLOOR))
    return out


def empirical_tail_log_odds(score: np.ndarray, calibration: np.ndarray, assume_sorted: bool = False) -> np.ndarray:
    """``log(0.5 / q)``, ``q`` the share of ``calibration`` (legitimate scores) at least as high as ``score``;
    0 where that share is half or more, and never beyond one calibration row (``q >= 1 / len(calibration)``).
    ``assume_sorted``: ``calibration`` is already in ascending order (a served model keeps it so)."""
    ordered = np.asarray(calibration, dtype=np.float64)
    ordered = ordered if assume_sorted else np.sort(ordered)
    if not len(ordered):
        raise ValueError("no calibration scores")
    share = 1.0 - np.searchsorted(ordered, np.asarray(score, dtype=np.float64), side="left") / len(ordered)
    return np.where(share >= 0.5, 0.0, np.log(0.5 / np.maximum(share, 1.0 / len(ordered))))
