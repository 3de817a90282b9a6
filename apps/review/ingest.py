"""Turning fraud alerts and inspection NG results into cases, idempotently.

Rules:

- Input is validated here, once, into the wire records of
  :mod:`npusuite.platform.contracts.alert` (:class:`FraudAlert`) and
  :mod:`npusuite.platform.contracts.inspection` (:class:`InspectionRecord`,
  that module's ``InspectionResult``), whose rules are described there;
  :func:`parse_fraud_alert` and :func:`parse_inspection` raise
  :class:`SchemaError` naming the bad field.
- A case is keyed by ``(kind, external_id)`` (transaction_id / inspection id).
  A repeat delivery returns the existing case with ``created=False`` and
  changes nothing, even when two deliveries race (the unique constraint
  decides, and the loser reads the winner's row).
- Risk, priority and SLA tier come from :mod:`npusuite.review.risk` (the
  model's own thresholds); the due time from the team's target for the tier
  (:meth:`ReviewConfig.sla_target_min`).  The case's team is its kind's
  (:mod:`npusuite.review.teams`); its linked entities are stored as
  ``case_links`` rows (:mod:`npusuite.review.links`).
- The SLA clock starts when the case arrives here, not at the transaction's
  own timestamp (replayed or late data must not arrive already breached).
- Images must be PNG; their size is read from the PNG header.
- Hostile input is refused, never stored: bodies nested deeper than
  :data:`~npusuite.platform.records.MAX_JSON_DEPTH` or larger than the
  caller's limit, and non-finite numbers (NaN, ±Infinity, or literals such as
  ``1e999`` that overflow to infinity) anywhere a number is stored (score,
  latency, features, boxes); boxes must lie inside their image (one pixel of
  rounding is tolerated).  Any error while validating is a SchemaError.
- A reason is 1-4096 characters.  The evidence (payload) keeps it whole; the
  reason row the queue filters on holds at most 256 characters, so a longer
  one is cut there and ends with ``…`` for all to see.  (The fraud scorer's
  phrases quote the transaction's numbers and can run past 256.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from npusuite.platform.contracts.alert import MAX_RECENT, FraudAlert, parse_fraud_alert
from npusuite.platform.contracts.inspection import (
    BOX_SLACK_PX,
    InspectionResult,
    decode_png_b64,
    parse_inspection_result,
    png_size,
)
from npusuite.platform.contracts.score import MAX_REASON_TEXT_CHARS
from npusuite.review.config import ReviewConfig
from npusuite.review.links import entities_of
from npusuite.review.models import Case, CaseImage, CaseLink, CaseReason, JournalEntry, utcnow
from npusuite.review.reason_phrases import codes_for
from npusuite.review.risk import Risk, fraud_risk, inspection_risk
from npusuite.review.teams import TEAM_OF_KIND

logger = logging.getLogger(__name__)

#: A reason is a phrase with the transaction's numbers ("card-not-present charge with no device or IP
#: (keyed by the merchant)" is 67 characters), not a short code: this is the reason row's size.
MAX_REASON_CHARS = 256
#: What ends a reason cut to fit its row.
CUT_MARKER = "\u2026"
_TITLE_CHARS = 200

#: The name this app has always used for the inspection ingest record.
InspectionRecord = InspectionResult


def reason_row_text(reason: str) -> str:
    """REASON as its row holds it: whole when it fits, else cut and ending with :data:`CUT_MARKER`."""
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + CUT_MARKER


def parse_inspection(raw: bytes | str | dict, max_bytes: int | None = None) -> InspectionResult:
    """Raises SchemaError on a bad body, including images that are not PNG and boxes outside the image."""
    return parse_inspection_result(raw, max_bytes)


@dataclass(frozen=True)
class IngestResult:
    case_id: int
    created: bool


def _existing(db: Session, kind: str, external_id: str) -> Case | None:
    return db.scalar(select(Case).where(Case.kind == kind, Case.external_id == external_id))


def _store(db: Session, case: Case, extra: list, source: str) -> IngestResult:
    """Insert CASE (+ rows in EXTRA) and its 'created' journal entry, or return the case already there."""
    found = _existing(db, case.kind, case.external_id)
    if found is not None:
        return IngestResult(found.id, False)
    db.add(case)
    try:
        db.flush()
        for row in extra:
            row.case_id = case.id
            db.add(row)
        db.add(JournalEntry(case_id=case.id, at=case.created_at, actor=source, field="status",
                            old_value=None, new_value="open", comment=f"case created from {source}"))
        db.commit()
    except IntegrityError:
        db.rollback()
        found = _existing(db, case.kind, case.external_id)
        if found is None:
            raise
        return IngestResult(found.id, False)
    logger.info("case %d created from %s %s (%s)", case.id, case.kind, case.external_id, source)
    return IngestResult(case.id, True)


def _risk_fields(kind: str, risk: Risk, now, cfg: ReviewConfig) -> dict:
    team = TEAM_OF_KIND[kind]
    return {"kind": kind, "team": team, "risk_band": risk.band, "risk_ratio": risk.ratio, "sla_tier": risk.tier,
            "priority": risk.priority, "created_at": now,
            "due_at": now + timedelta(minutes=cfg.sla_target_min(team, risk.tier))}


def _links(kind: str, payload: dict, model: str) -> list[CaseLink]:
    return [CaseLink(entity=e, value=v) for e, v in entities_of(kind, payload, model).items()]


def _title(text: str) -> str:
    """A case title fits its column: a long merchant id must not make the database refuse the case."""
    return text if len(text) <= _TITLE_CHARS else text[: _TITLE_CHARS - 1] + CUT_MARKER


def ingest_fraud_alert(db: Session, alert: FraudAlert, source: str, cfg: ReviewConfig) -> IngestResult:
    now = utcnow()
    tx = alert.transaction
    payload = alert.model_dump(mode="json")
    risk = fraud_risk(alert.score, alert.decision, payload.get("thresholds"))
    case = Case(
        external_id=alert.transaction_id, status="open", score=alert.score,
        model_decision=alert.decision, model=alert.model, typology=alert.fraud_type, outcome=None,
        title=_title(f"{tx.amount:,.2f} {tx.currency} {tx.channel.replace('_', ' ')} at {tx.merchant_id} "
                     f"({tx.country})"),
        payload=payload, source=source, **_risk_fields("fraud", risk, now, cfg),
    )
    codes = codes_for(alert.reasons, alert.reason_codes)
    reasons = [CaseReason(position=i, reason=reason_row_text(r), code=c)
               for i, (r, c) in enumerate(zip(alert.reasons, codes, strict=True))]
    return _store(db, case, [*reasons, *_links("fraud", payload, alert.model)], source)


InspectionOutcome = Literal["confirmed_defect", "false_reject"]


def ingest_inspection(db: Session, rec: InspectionRecord, source: str, cfg: ReviewConfig) -> IngestResult:
    now = utcnow()
    image, width, height = decode_png_b64(rec.image_png_b64, "image_png_b64")
    rows: list = [CaseImage(name="image", png=image, width_px=width, height_px=height)]
    if rec.heatmap_png_b64 is not None:
        heat, hw, hh = decode_png_b64(rec.heatmap_png_b64, "heatmap_png_b64")
        rows.append(CaseImage(name="heatmap", png=heat, width_px=hw, height_px=hh))
    payload = rec.model_dump(mode="json", exclude={"image_png_b64", "heatmap_png_b64"})
    risk = inspection_risk(rec.score, rec.threshold)
    case = Case(
        external_id=rec.id, status="open",
        score=rec.score, model_decision="ng" if rec.defective else "ok", model=rec.model, typology=None,
        outcome=None, title=_title(f"{rec.line} / {rec.product or 'unknown product'}: {len(rec.boxes)} region(s)"),
        payload=payload, source=source, **_risk_fields("inspection", risk, now, cfg),
    )
    return _store(db, case, [*rows, *_links("inspection", payload, rec.model)], source)


__all__ = ["BOX_SLACK_PX", "CUT_MARKER", "MAX_REASON_CHARS", "MAX_REASON_TEXT_CHARS", "MAX_RECENT", "FraudAlert",
           "InspectionOutcome", "InspectionRecord", "IngestResult", "decode_png_b64", "ingest_fraud_alert",
           "ingest_inspection", "parse_fraud_alert", "parse_inspection", "png_size", "reason_row_text"]
