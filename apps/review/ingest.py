"""Turning fraud alerts and inspection NG results into cases, idempotently.

Rules:

- Input is validated here, once, into :class:`FraudAlert` /
  :class:`InspectionRecord`; :func:`parse_fraud_alert` and
  :func:`parse_inspection` raise :class:`SchemaError` naming the bad field.
- A case is keyed by ``(kind, external_id)`` (transaction_id / inspection id).
  A repeat delivery returns the existing case with ``created=False`` and
  changes nothing, even when two deliveries race (the unique constraint
  decides, and the loser reads the winner's row).
- Priority (higher first in "next case"): fraud = score, plus 1 for
  ``decline``; inspection = score / threshold, capped at 2.
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

import base64
import binascii
import logging
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from npusuite.fraud.schema import Decision, Transaction
from npusuite.platform.errors import SchemaError
from npusuite.platform.records import load_json_object, validation_reason
from npusuite.review.config import ReviewConfig
from npusuite.review.models import Case, CaseImage, CaseReason, JournalEntry, utcnow

logger = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_RECENT = 20
#: A reason is a phrase with the transaction's numbers ("card-not-present charge with no device or IP
#: (keyed by the merchant)" is 67 characters), not a short code: this is the reason row's size.
MAX_REASON_CHARS = 256
#: The longest reason accepted at all; the payload keeps it whole, the row holds a shortened copy.
MAX_REASON_TEXT_CHARS = 4096
#: What ends a reason cut to fit its row.
CUT_MARKER = "\u2026"
#: A box may end this many pixels past its image (the inspector rounds boxes scaled back to frame size).
BOX_SLACK_PX = 1.0
_TITLE_CHARS = 200

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class FraudAlert(BaseModel):
    """One ``fraud-alerts`` message (interface 3): the score fields of CONTRACTS §2 plus evidence."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str = Field(min_length=1, max_length=128)
    score: float = Field(ge=0.0, le=1.0)
    decision: Decision
    reasons: list[str] = Field(max_length=64)
    model: str = Field(min_length=1, max_length=128)
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    transaction: Transaction
    account_recent: list[Transaction] = Field(default_factory=list)
    features: dict[str, FiniteFloat] = Field(default_factory=dict, max_length=1024)
    llm_rationale: str | None = None
    fraud_type: str | None = Field(default=None, max_length=64)

    @field_validator("account_recent")
    @classmethod
    def _last_twenty(cls, value: list[Transaction]) -> list[Transaction]:
        return value[-MAX_RECENT:]

    @field_validator("reasons")
    @classmethod
    def _bounded_reasons(cls, value: list[str]) -> list[str]:
        if any(not r or len(r) > MAX_REASON_TEXT_CHARS for r in value):
            raise ValueError(f"each reason must be 1-{MAX_REASON_TEXT_CHARS} characters")
        return value


def reason_row_text(reason: str) -> str:
    """REASON as its row holds it: whole when it fits, else cut and ending with :data:`CUT_MARKER`."""
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + CUT_MARKER


class InspectionRecord(BaseModel):
    """One inspection NG result (interface 4)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    timestamp: datetime
    line: str = Field(min_length=1, max_length=64)
    product: str | None = Field(default=None, max_length=64)
    image_png_b64: str = Field(min_length=1)
    heatmap_png_b64: str | None = None
    score: float = Field(allow_inf_nan=False)
    threshold: float = Field(allow_inf_nan=False)
    defective: bool
    boxes: list[tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]] = Field(default_factory=list,
                                                                                    max_length=256)
    model: str = Field(min_length=1, max_length=128)


def _validate(model: type[BaseModel], raw: bytes | str | dict, max_bytes: int | None):
    try:
        return model.model_validate(load_json_object(raw, max_bytes=max_bytes))
    except ValidationError as exc:
        raise SchemaError(validation_reason(exc, "body")) from None
    except (ValueError, ArithmeticError) as exc:
        # pydantic passes on what a validator raises besides ValueError: a timestamp of year 1 with a
        # positive offset raises OverflowError when it is moved to UTC.
        raise SchemaError(f"body: {exc}") from None


def parse_fraud_alert(raw: bytes | str | dict, max_bytes: int | None = None) -> FraudAlert:
    """Raises SchemaError: not JSON, too large or deep, wrong shape, or a transaction id differing from the alert's."""
    alert = _validate(FraudAlert, raw, max_bytes)
    if alert.transaction.transaction_id != alert.transaction_id:
        raise SchemaError("field 'transaction.transaction_id' differs from the alert's transaction_id")
    return alert


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG header.  Raises SchemaError when DATA is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise SchemaError("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise SchemaError("PNG image has no pixels")
    return width, height


def decode_png_b64(text: str, field: str) -> tuple[bytes, int, int]:
    """Raises SchemaError naming FIELD when TEXT is not base64 of a PNG."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SchemaError(f"field '{field}': not valid base64") from None
    try:
        width, height = png_size(data)
    except SchemaError as exc:
        raise SchemaError(f"field '{field}': {exc}") from None
    return data, width, height


def parse_inspection(raw: bytes | str | dict, max_bytes: int | None = None) -> InspectionRecord:
    """Raises SchemaError on a bad body, including images that are not PNG and boxes outside the image."""
    rec = _validate(InspectionRecord, raw, max_bytes)
    if rec.timestamp.tzinfo is None:
        raise SchemaError("field 'timestamp': must carry a UTC offset (RFC 3339)")
    _image, width, height = decode_png_b64(rec.image_png_b64, "image_png_b64")
    for i, (x, y, w, h) in enumerate(rec.boxes):
        if w < 0 or h < 0:
            raise SchemaError(f"field 'boxes.{i}': width and height must be >= 0")
        if x < 0 or y < 0 or x + w > width + BOX_SLACK_PX or y + h > height + BOX_SLACK_PX:
            raise SchemaError(f"field 'boxes.{i}': box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the "
                              f"{width}x{height} image")
    if rec.heatmap_png_b64 is not None:
        decode_png_b64(rec.heatmap_png_b64, "heatmap_png_b64")
    return rec


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


def _title(text: str) -> str:
    """A case title fits its column: a long merchant id must not make the database refuse the case."""
    return text if len(text) <= _TITLE_CHARS else text[: _TITLE_CHARS - 1] + CUT_MARKER


def ingest_fraud_alert(db: Session, alert: FraudAlert, source: str, cfg: ReviewConfig) -> IngestResult:
    now = utcnow()
    tx = alert.transaction
    sla_min = cfg.sla_fraud_decline_min if alert.decision == "decline" else cfg.sla_fraud_review_min
    case = Case(
        kind="fraud", external_id=alert.transaction_id, status="open",
        priority=alert.score + (1.0 if alert.decision == "decline" else 0.0), score=alert.score,
        model_decision=alert.decision, model=alert.model, typology=alert.fraud_type, outcome=None,
        title=_title(f"{tx.amount:,.2f} {tx.currency} {tx.channel.replace('_', ' ')} at {tx.merchant_id} "
                     f"({tx.country})"),
        created_at=now, due_at=now + timedelta(minutes=sla_min),
        payload=alert.model_dump(mode="json"), source=source,
    )
    reasons = [CaseReason(position=i, reason=reason_row_text(r)) for i, r in enumerate(alert.reasons)]
    return _store(db, case, reasons, source)


InspectionOutcome = Literal["confirmed_defect", "false_reject"]


def ingest_inspection(db: Session, rec: InspectionRecord, source: str, cfg: ReviewConfig) -> IngestResult:
    now = utcnow()
    image, width, height = decode_png_b64(rec.image_png_b64, "image_png_b64")
    rows: list = [CaseImage(name="image", png=image, width_px=width, height_px=height)]
    if rec.heatmap_png_b64 is not None:
        heat, hw, hh = decode_png_b64(rec.heatmap_png_b64, "heatmap_png_b64")
        rows.append(CaseImage(name="heatmap", png=heat, width_px=hw, height_px=hh))
    ratio = rec.score / rec.threshold if rec.threshold > 0 else 1.0
    payload = rec.model_dump(mode="json", exclude={"image_png_b64", "heatmap_png_b64"})
    case = Case(
        kind="inspection", external_id=rec.id, status="open", priority=max(0.0, min(2.0, ratio)),
        score=rec.score, model_decision="ng" if rec.defective else "ok", model=rec.model, typology=None,
        outcome=None, title=_title(f"{rec.line} / {rec.product or 'unknown product'}: {len(rec.boxes)} region(s)"),
        created_at=now, due_at=now + timedelta(minutes=cfg.sla_inspection_min), payload=payload, source=source,
    )
    return _store(db, case, rows, source)
