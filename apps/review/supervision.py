"""Supervisor actions on a team's queue: reassigning a case and deciding many cases at once.

Rules:

- Both need the supervisor role in the case's team
  (:mod:`npusuite.review.teams`); an analyst is refused (PermissionDenied,
  HTTP 403) before anything changes.
- Reassign hands a case that is not closed to an active member of its team
  (an escalated case only to a supervisor of the team); it becomes
  ``in_review`` held by them.  Compare-and-set on (status, holder), journaled
  as usual (assignee, and status when it changes).
- Bulk decide closes up to :data:`MAX_BULK` cases of the supervisor's team
  with one closing action (not escalate), one comment and optional type,
  checked by the rules of :func:`npusuite.review.cases.checked_decision`.  A
  case is closed when it is open or escalated and unassigned, or held by the
  supervisor; anything else (closed, held by someone else, another kind or
  team, unknown id) is skipped with its reason, never overwritten.  Each
  case is a compare-and-set, so a case someone took meanwhile is skipped, and
  a repeated request closes nothing twice.  Each closed case gets exactly one
  journal entry (field ``outcome``; the comment names the bulk action, the
  status it left and the type), all in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from npusuite.platform.errors import UserError
from npusuite.review.accounts import SessionInfo
from npusuite.review.cases import CaseStateError, PermissionDenied, checked_decision, journal, visible_case
from npusuite.review.models import Case, User, utcnow
from npusuite.review.teams import TEAM_OF_KIND

logger = logging.getLogger(__name__)

MAX_BULK = 200


def reassign(db: Session, case_id: int, me: SessionInfo, username: str) -> Case:
    """Give case CASE_ID to USERNAME.  Raises NotFoundError, PermissionDenied, CaseStateError or UserError."""
    found = visible_case(db, case_id, me)
    if not me.supervises(found.team):
        raise PermissionDenied(f"reassigning needs the supervisor role in the {found.team} team")
    target = db.scalar(select(User).where(User.username == username))
    if target is None or not target.active:
        raise UserError(f"no active user {username[:64]!r}")
    role = "supervisor" if target.role == "admin" else target.team_roles().get(found.team)
    if role is None:
        raise UserError(f"{target.username} is not in the {found.team} team")
    if found.status == "closed":
        raise CaseStateError(f"case {case_id} is already closed ({found.outcome})")
    if found.status == "escalated" and role != "supervisor":
        raise UserError("an escalated case goes to a supervisor of the team")
    if found.assignee_id == target.id:
        return found
    old_status, old_holder = found.status, found.assignee.username if found.assignee else None
    res = db.execute(update(Case).where(Case.id == case_id, Case.status == old_status,
                                        Case.assignee_id.is_(None) if found.assignee_id is None
                                        else Case.assignee_id == found.assignee_id)
                     .values(assignee_id=target.id, status="in_review", assigned_at=utcnow())
                     .execution_options(synchronize_session=False))
    if res.rowcount != 1:
        db.rollback()
        raise CaseStateError(f"case {case_id} changed meanwhile; reload it")
    journal(db, found, me.username, "assignee", old_holder, target.username, "reassigned by a supervisor")
    if old_status != "in_review":
        journal(db, found, me.username, "status", old_status, "in_review")
    db.commit()
    db.expire(found)
    db.refresh(found)
    logger.info("case %d reassigned by %s to %s", case_id, me.username, target.username)
    return found


@dataclass
class BulkResult:
    closed: list[int] = field(default_factory=list)
    #: (case id, why it was left alone)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def bulk_decide(db: Session, me: SessionInfo, case_ids: list[int], action: str, comment: str | None,
                label_type: str | None = None) -> BulkResult:
    """Close CASE_IDS with ACTION.  Raises UserError (bad action, comment, type, too many or no ids) or
    PermissionDenied (not a supervisor of the action's team) before changing anything."""
    decision = checked_decision(action, comment, label_type)
    if decision.outcome is None:
        raise UserError("bulk decisions close cases: escalate them one by one")
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        raise UserError("choose at least one case")
    if len(ids) > MAX_BULK:
        raise UserError(f"at most {MAX_BULK} cases at once")
    team = TEAM_OF_KIND[decision.kind]
    if not me.supervises(team):
        raise PermissionDenied(f"bulk decisions need the supervisor role in the {team} team")
    found = {c.id: c for c in db.scalars(select(Case).where(Case.id.in_(ids))).unique()}
    out = BulkResult()
    now = utcnow()
    for case_id in ids:
        c = found.get(case_id)
        why = _why_not(c, me, decision.kind)
        if why is not None:
            out.skipped.append((case_id, why))
            continue
        values: dict[str, object] = {"status": "closed", "outcome": decision.outcome, "closed_at": now,
                                     "assignee_id": me.user_id, "assigned_at": c.assigned_at or now}
        if decision.label_type is not None:
            values["typology"] = decision.label_type
        res = db.execute(update(Case).where(Case.id == case_id, Case.status == c.status,
                                            or_(Case.assignee_id.is_(None), Case.assignee_id == me.user_id))
                         .values(**values).execution_options(synchronize_session=False))
        if res.rowcount != 1:
            out.skipped.append((case_id, "changed meanwhile"))
            continue
        typed = f", type {decision.label_type}" if decision.label_type else ""
        journal(db, c, me.username, "outcome", c.outcome, decision.outcome,
                f"bulk decision ({c.status} -> closed{typed}): {decision.comment}")
        out.closed.append(case_id)
    db.commit()
    logger.info("bulk %s by %s: %d closed, %d skipped", action, me.username, len(out.closed), len(out.skipped))
    return out


def _why_not(c: Case | None, me: SessionInfo, kind: str) -> str | None:
    if c is None:
        return "no such case"
    if c.kind != kind:
        return f"a {c.kind} case"
    if me.role_in(c.team) is None:
        return f"in the {c.team} team"
    if c.status == "closed":
        return "already closed"
    if c.assignee_id is not None and c.assignee_id != me.user_id:
        return f"held by {c.assignee.username}"
    return None
