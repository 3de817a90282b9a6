"""Linked cases: the entities a case shares with others, and what happened to those others.

Rules:

- A fraud case links by the transaction's account, card, device, IP network
  (the /16, as the fraud features see it) and merchant; an inspection case by
  line, product and model version.  :func:`entities_of` extracts them from the
  payload (pure; ingest and migration 0005 store them as ``case_links`` rows,
  indexed by entity and value, so lookups never parse JSON in SQL).
- :func:`linked_context` counts, per entity, the other cases of the same kind
  sharing it: open, confirmed (fraud / defect) and cleared (legitimate /
  false reject), with the most recent ones listed.  Inspection context looks
  at the last :data:`INSPECTION_WINDOW_H` hours only, and also gives the
  false-reject rate QC confirmed for the same line, product and model there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from npusuite.fraud.features import ip_net
from npusuite.review.models import Case, CaseLink

FRAUD_ENTITIES = ("account", "card", "device", "ip_net", "merchant")
INSPECTION_ENTITIES = ("line", "product", "model")
ENTITY_LABELS = {"account": "Account", "card": "Card", "device": "Device", "ip_net": "IP network /16",
                 "merchant": "Merchant", "line": "Line", "product": "Product", "model": "Model version"}
INSPECTION_WINDOW_H = 8
#: Cases listed per entity (counts cover all of them).
LISTED = 3
MAX_VALUE_CHARS = 128
_CONFIRMED = ("confirmed_fraud", "confirmed_defect")
_CLEARED = ("legitimate", "false_reject")


def entities_of(kind: str, payload: dict[str, Any], model: str | None = None) -> dict[str, str]:
    """{entity: value} of a case; entities without a value (no device, no product) are left out."""
    if kind == "fraud":
        tx = payload.get("transaction") or {}
        values = {"account": tx.get("account_id"), "card": tx.get("card_id"), "device": tx.get("device_id"),
                  "ip_net": ip_net(tx.get("ip")), "merchant": tx.get("merchant_id")}
    else:
        values = {"line": payload.get("line"), "product": payload.get("product"),
                  "model": model or payload.get("model")}
    return {k: str(v)[:MAX_VALUE_CHARS] for k, v in values.items() if v}


@dataclass
class EntityLinks:
    entity: str
    value: str
    open: int = 0
    confirmed: int = 0
    cleared: int = 0
    cases: list[Case] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ENTITY_LABELS.get(self.entity, self.entity)

    @property
    def total(self) -> int:
        return self.open + self.confirmed + self.cleared


@dataclass
class LinkedContext:
    entities: list[EntityLinks]
    #: Inspection only: (false rejects, decided) for the same line, product and model in the window.
    false_rejects: tuple[int, int] | None = None
    window_h: int | None = None

    @property
    def false_reject_rate(self) -> float | None:
        if not self.false_rejects or not self.false_rejects[1]:
            return None
        return self.false_rejects[0] / self.false_rejects[1]


def _others(case: Case, entity: str, value: str, since: datetime | None):
    q = (select(Case).join(CaseLink, CaseLink.case_id == Case.id)
         .where(CaseLink.entity == entity, CaseLink.value == value, Case.kind == case.kind, Case.id != case.id))
    return q if since is None else q.where(Case.created_at >= since)


def linked_context(db: Session, case: Case, now: datetime) -> LinkedContext:
    since = now - timedelta(hours=INSPECTION_WINDOW_H) if case.kind == "inspection" else None
    mine = {link.entity: link.value for link in db.scalars(select(CaseLink).where(CaseLink.case_id == case.id))}
    order = FRAUD_ENTITIES if case.kind == "fraud" else INSPECTION_ENTITIES
    out = []
    for entity in order:
        if entity not in mine:
            continue
        got = EntityLinks(entity, mine[entity])
        sub = _others(case, entity, mine[entity], since).subquery()
        for status, outcome, n in db.execute(select(sub.c.status, sub.c.outcome, func.count())
                                             .group_by(sub.c.status, sub.c.outcome)):
            if status != "closed":
                got.open += n
            elif outcome in _CONFIRMED:
                got.confirmed += n
            elif outcome in _CLEARED:
                got.cleared += n
        got.cases = list(db.scalars(_others(case, entity, mine[entity], since)
                                    .order_by(Case.created_at.desc(), Case.id.desc()).limit(LISTED)).unique())
        out.append(got)
    ctx = LinkedContext(out, window_h=INSPECTION_WINDOW_H if since is not None else None)
    if case.kind == "inspection" and all(e in mine for e in INSPECTION_ENTITIES):
        q = select(Case.outcome, func.count()).where(Case.kind == "inspection", Case.status == "closed",
                                                     Case.created_at >= since, Case.id != case.id)
        for entity in INSPECTION_ENTITIES:
            link = aliased(CaseLink)
            q = q.join(link, and_(link.case_id == Case.id, link.entity == entity, link.value == mine[entity]))
        counts = dict(db.execute(q.group_by(Case.outcome)).all())
        ctx.false_rejects = (counts.get("false_reject", 0), sum(counts.values()))
    return ctx
