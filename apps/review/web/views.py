"""Turning stored cases into what pages and JSON show; pure functions, no I/O.

Case references are short and human: ``F-0042`` (fraud) / ``Q-0042`` (QC),
from the case's own id; the source's id (a transaction id, an inspection
record id) is kept and shown beside it.  Risk is shown as the score with the
threshold it is judged against, coloured by its band on the model's own
thresholds (:mod:`npusuite.review.risk`).
"""

from __future__ import annotations

from datetime import datetime

from npusuite.fraud.feature_docs import FeatureText, describe_all, duration, headline
from npusuite.platform.contracts.labels import DefectKind, FraudTypology, ReasonCode
from npusuite.review import risk as risk_rules
from npusuite.review.models import Case, JournalEntry, utcnow
from npusuite.review.sla import is_breached

#: code -> human label, for the queue's filter menus and tags.
REASON_LABELS: dict[str, str] = {c.value: c.label for c in ReasonCode}
#: typology or defect type -> human label ("other" reads "Other fraud" or "Other defect" by kind; the
#: menu lists both kinds, so it says "other").
TYPOLOGY_LABELS: dict[str, str] = {**{d.value: d.label for d in DefectKind},
                                   **{t.value: t.label for t in FraudTypology}, "other": "Other"}


_REF_PREFIX = {"fraud": "F", "inspection": "Q"}
BAND_LABELS = {"approve": "below review", "review": "review", "decline": "decline", "pass": "below threshold",
               "reject": "reject", "severe": "severe reject"}


def case_ref(case: Case) -> str:
    """'F-0042': short, typed, readable aloud; the source id stays in ``external_id``."""
    return f"{_REF_PREFIX.get(case.kind, 'C')}-{case.id:04d}"


def risk_view(case: Case) -> dict:
    """What the risk badge shows: band, score, the threshold it is judged against, and the scale in words."""
    r = risk_rules.case_risk(case.kind, case.score, case.model_decision, case.payload or {})
    return {"band": case.risk_band, "band_label": BAND_LABELS.get(case.risk_band, case.risk_band),
            "score": case.score, "threshold": r.threshold, "ratio": case.risk_ratio, "source": r.source,
            "scale": risk_rules.threshold_text(case.kind, r, case.payload or {})}


def breached(case: Case, now: datetime | None = None) -> bool:
    return case.status != "closed" and is_breached(case.due_at, now or utcnow())


def human_features(case: Case, n: int = 10) -> tuple[list[FeatureText], list[FeatureText]]:
    """(headline features, all features) in people's words."""
    feats = case.payload.get("features") or {}
    return headline(feats, n), describe_all(feats)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")


def age_text(at: datetime, now: datetime | None = None) -> str:
    minutes = ((now or utcnow()) - at).total_seconds() / 60
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.0f} d"


def sla_text(case: Case, now: datetime | None = None) -> tuple[str, str]:
    """(text, css class): time left, or how late, or how it closed."""
    now = now or utcnow()
    if case.status == "closed":
        late = case.closed_at is not None and case.closed_at > case.due_at
        return ("closed late" if late else "met"), ("bad" if late else "good")
    minutes = (case.due_at - now).total_seconds() / 60
    if is_breached(case.due_at, now):
        return ("breached now" if minutes > -1 else f"breached {age_text(case.due_at, now)} ago"), "bad"
    left = f"{minutes:.0f} min left" if minutes < 120 else f"{minutes / 60:.1f} h left"
    return left, "warn" if minutes < 30 else "ok"


def case_json(case: Case, journal: list[JournalEntry] | None = None) -> dict:
    out = {
        "id": case.id, "ref": case_ref(case), "kind": case.kind, "team": case.team, "external_id": case.external_id,
        "status": case.status, "priority": case.priority, "score": case.score, "model_decision": case.model_decision,
        "risk_band": case.risk_band, "risk_ratio": case.risk_ratio, "sla_tier": case.sla_tier,
        "breached": breached(case),
        "model": case.model, "typology": case.typology, "outcome": case.outcome,
        "assignee": case.assignee.username if case.assignee else None, "title": case.title,
        "reasons": [r.reason for r in case.reasons], "reason_codes": [r.code for r in case.reasons],
        "created_at": iso(case.created_at),
        "due_at": iso(case.due_at), "assigned_at": iso(case.assigned_at), "closed_at": iso(case.closed_at),
        "source": case.source,
    }
    if journal is not None:
        out["payload"] = case.payload
        out["journal"] = [journal_json(e) for e in journal]
    return out


def journal_json(entry: JournalEntry) -> dict:
    return {"id": entry.id, "case_id": entry.case_id, "at": iso(entry.at), "actor": entry.actor,
            "field": entry.field, "old": entry.old_value, "new": entry.new_value, "comment": entry.comment}


def timeline(case: Case) -> list[dict]:
    """The account's recent transactions, oldest first, then the alerted one, with the gap between each."""
    items = [*case.payload.get("account_recent", []), {**case.payload["transaction"], "_alerted": True}]
    out, previous = [], None
    for tx in items:
        at = datetime.fromisoformat(tx["timestamp"].replace("Z", "+00:00"))
        gap = None if previous is None else (at - previous).total_seconds()
        out.append({**tx, "_at": at.strftime("%Y-%m-%d %H:%M:%S"), "_gap": _gap_text(gap)})
        previous = at
    return out


def _gap_text(seconds: float | None) -> str:
    return "" if seconds is None else f"+{duration(seconds)}"


def box_percentages(case: Case, width_px: int, height_px: int) -> list[dict]:
    """Boxes as percentages of the image, for an overlay that scales with it."""
    return [{"left": 100 * x / width_px, "top": 100 * y / height_px, "width": 100 * w / width_px,
             "height": 100 * h / height_px} for x, y, w, h in case.payload.get("boxes", [])]

