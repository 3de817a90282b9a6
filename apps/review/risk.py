"""Risk on the model's own scale: bands, the ratio to the action threshold, queue priority, SLA tier.

Pure functions, no I/O; ingest and migration 0005 both use them, so a case
reads the same however it was stored.

Rules:

- Fraud: the alert's ``thresholds`` (the model card's, carried since the
  scorer filled them) give the band: ``decline`` at or above the decline
  threshold, ``review`` at or above the review threshold, else ``approve``.
  The ratio is score ÷ decline threshold (1.0 = where the model declines).
  An alert without thresholds (an older scorer) takes the band from the
  decision the scorer made, has no ratio, and says so (``source =
  "decision"``): a score of 0.166 can be a decline for a model whose decline
  threshold is 0.08, so the raw score is never coloured on a 0-1 scale.
- Inspection: the ratio is score ÷ threshold (1.0 = where the model
  rejects): ``severe`` from :data:`SEVERE_RATIO`, ``reject`` from 1, else
  ``pass``.  A threshold of 0 or less has no scale: the band is ``reject``
  (the line rejected it) with no ratio.
- Priority (higher first within a team queue): the band's rank plus a
  fraction ordering cases inside the band (the score for fraud, the ratio
  for inspection), so the band always dominates.
- SLA tier: ``high`` for fraud ``decline`` and inspection ``severe``, else
  ``normal``; each team has a target per tier (:mod:`npusuite.review.sla`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Bands per kind, least to most urgent (the index is the rank).
FRAUD_BANDS = ("approve", "review", "decline")
INSPECTION_BANDS = ("pass", "reject", "severe")
#: score ÷ threshold from which an inspection reject is severe (and on the high SLA tier).
SEVERE_RATIO = 1.5
HIGH_BANDS = frozenset({"decline", "severe"})


@dataclass(frozen=True)
class Risk:
    band: str
    #: score ÷ the threshold that triggers action, or None when the threshold is unknown.
    ratio: float | None
    #: the threshold the ratio is taken against (decline / inspection threshold), or None.
    threshold: float | None
    #: "model": from the model's thresholds; "decision": from the scorer's decision (no thresholds).
    source: str
    priority: float
    tier: str


def _tier(band: str) -> str:
    return "high" if band in HIGH_BANDS else "normal"


def fraud_risk(score: float, decision: str, thresholds: dict[str, Any] | None) -> Risk:
    """THRESHOLDS: the alert's ``{review, decline}`` (a dict, as stored), or None for older alerts."""
    if thresholds and thresholds.get("decline") and thresholds.get("review") is not None:
        decline, review = float(thresholds["decline"]), float(thresholds["review"])
        band = "decline" if score >= decline else "review" if score >= review else "approve"
        ratio, threshold, source = score / decline, decline, "model"
    else:
        band = decision if decision in FRAUD_BANDS else "review"
        ratio, threshold, source = None, None, "decision"
    priority = FRAUD_BANDS.index(band) + min(max(score, 0.0), 0.999)
    return Risk(band, ratio, threshold, source, priority, _tier(band))


def inspection_risk(score: float, threshold: float) -> Risk:
    if threshold <= 0:
        return Risk("reject", None, None, "decision", 1.0, "normal")
    ratio = score / threshold
    band = "severe" if ratio >= SEVERE_RATIO else "reject" if ratio >= 1.0 else "pass"
    priority = INSPECTION_BANDS.index(band) + min(max(ratio, 0.0) / 4.0, 0.999)
    return Risk(band, ratio, threshold, "model", priority, _tier(band))


def case_risk(kind: str, score: float, decision: str, payload: dict[str, Any]) -> Risk:
    """The risk of a stored case from its payload (the alert, or the inspection record)."""
    if kind == "fraud":
        return fraud_risk(score, decision, payload.get("thresholds"))
    return inspection_risk(score, float(payload.get("threshold") or 0.0))


def threshold_text(kind: str, risk: Risk, payload: dict[str, Any]) -> str:
    """The score's scale in words: 'review ≥ 0.040 · decline ≥ 0.080', or why there is none."""
    if kind == "fraud":
        t = payload.get("thresholds")
        if risk.source != "model" or not t:
            return "no thresholds in this alert (older scorer): coloured by the scorer's decision"
        return f"review ≥ {float(t['review']):.3f} · decline ≥ {float(t['decline']):.3f}"
    if risk.threshold is None:
        return "no usable threshold: coloured as a reject"
    return f"reject ≥ {risk.threshold:.4g} · severe ≥ {SEVERE_RATIO:g}× threshold"
