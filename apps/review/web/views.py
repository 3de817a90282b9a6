"""Turning stored cases into what pages and JSON show; pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime

from npusuite.platform.contracts.labels import DefectKind, FraudTypology, ReasonCode
from npusuite.review.models import Case, JournalEntry, utcnow

#: code -> human label, for the queue's filter menus and tags.
REASON_LABELS: dict[str, str] = {c.value: c.label for c in ReasonCode}
#: typology or defect type -> human label ("other" reads "Other fraud" or "Other defect" by kind; the
#: menu lists both kinds, so it says "other").
TYPOLOGY_LABELS: dict[str, str] = {**{d.value: d.label for d in DefectKind},
                                   **{t.value: t.label for t in FraudTypology}, "other": "Other"}


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
    if minutes < 0:
        return f"breached {age_text(case.due_at, now)} ago", "bad"
    left = f"{minutes:.0f} min left" if minutes < 120 else f"{minutes / 60:.1f} h left"
    return left, "warn" if minutes < 30 else "ok"


def case_json(case: Case, journal: list[JournalEntry] | None = None) -> dict:
    out = {
        "id": case.id, "kind": case.kind, "external_id": case.external_id, "status": case.status,
        "priority": case.priority, "score": case.score, "model_decision": case.model_decision,
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
    if seconds is None:
        return ""
    if seconds < 120:
        return f"+{seconds:.0f} s"
    if seconds < 7200:
        return f"+{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"+{seconds / 3600:.1f} h"
    return f"+{seconds / 86400:.0f} d"


def box_percentages(case: Case, width_px: int, height_px: int) -> list[dict]:
    """Boxes as percentages of the image, for an overlay that scales with it."""
    return [{"left": 100 * x / width_px, "top": 100 * y / height_px, "width": 100 * w / width_px,
             "height": 100 * h / height_px} for x, y, w, h in case.payload.get("boxes", [])]


def top_features(case: Case, n: int = 12) -> list[tuple[str, float]]:
    feats = case.payload.get("features") or {}
    return sorted(feats.items(), key=lambda kv: -abs(kv[1]))[:n]
