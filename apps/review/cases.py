"""The case workflow: the queue, taking and locking cases, decisions, and the journal.

Rules:

- Only one person holds a case at a time.  Taking is a compare-and-set
  ``UPDATE ... WHERE assignee_id IS NULL AND status IN (...)``: on SQLite the
  write lock serialises it, on PostgreSQL the row lock makes the loser re-check
  the WHERE clause and update nothing.  On PostgreSQL the candidate is also
  picked with ``FOR UPDATE SKIP LOCKED`` so concurrent takers do not queue up
  on the same row.  :func:`next_case` retries with the next candidate when it
  loses a race.
- Every queue is a team's (:mod:`npusuite.review.teams`): a user sees, takes
  and decides only the cases of their teams (others: PermissionDenied), and
  "next case" takes from one of the user's teams (the one asked for, or any
  of theirs), never another's.
- "Next case" takes escalated cases first (supervisors of the team only),
  then breached ones (a breach raises priority, :mod:`npusuite.review.sla`),
  then the highest priority (the band on the model's own thresholds,
  :mod:`npusuite.review.risk`), then the oldest.  Analysts take ``open``
  cases; supervisors of the case's team also take ``escalated`` ones.
- Only the holder decides.  Every decision that closes a case, and every
  escalation, needs a comment.  Escalation hands the case back, unassigned,
  to the supervisors.
- Labels come from one vocabulary
  (:mod:`npusuite.platform.contracts.labels`): a fraud type must be a
  ``FraudTypology`` value, a defect type a ``DefectKind`` value; anything else
  is refused (400), so every exported label is a class training accepts.  The
  queue's reason filter takes a ``ReasonCode`` value (unknown codes are
  refused) and matches the code stored with each reason, not its phrase.
- Every change writes journal rows (field, old value -> new value, actor,
  time, comment) in the same transaction as the change; nothing ever updates
  or deletes a journal row (the database refuses it, see the migration).

Raises :class:`NotFoundError` (no such case), :class:`CaseStateError` (the case
is not in a state that allows it: held by someone else, already closed) and
:class:`PermissionDenied` (the role may not do it); other bad input is a
:class:`UserError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, exists, or_, select, update
from sqlalchemy.orm import Session

from npusuite.platform.contracts.labels import ReasonCode, parse_defect_kind, parse_typology
from npusuite.platform.errors import NotFoundError, UserError
from npusuite.review.accounts import SessionInfo
from npusuite.review.links import ENTITY_LABELS
from npusuite.review.models import Case, CaseLink, CaseReason, JournalEntry, User, utcnow
from npusuite.review.sla import breached_expr
from npusuite.review.teams import TEAM_OF_KIND, TEAMS

logger = logging.getLogger(__name__)

#: action -> (case kind, outcome or None for escalation, new status)
ACTIONS: dict[str, tuple[str, str | None, str]] = {
    "confirm_fraud": ("fraud", "confirmed_fraud", "closed"),
    "legitimate": ("fraud", "legitimate", "closed"),
    "escalate": ("fraud", None, "escalated"),
    "confirm_defect": ("inspection", "confirmed_defect", "closed"),
    "false_reject": ("inspection", "false_reject", "closed"),
}
SORTS = {"risk": "breached first, then highest risk on the model's thresholds", "age": "oldest first",
         "sla": "nearest SLA deadline first"}
MAX_COMMENT_CHARS = 4000
_MAX_TAKE_TRIES = 50


class CaseStateError(UserError):
    """The case's state does not allow the action (HTTP 409)."""


class PermissionDenied(UserError):
    """The user's role or holding does not allow the action (HTTP 403)."""


@dataclass(frozen=True)
class QueueFilter:
    kind: str | None = None
    status: str | None = None
    decision: str | None = None
    outcome: str | None = None
    reason: str | None = None
    typology: str | None = None
    model: str | None = None
    #: a user name, ``me`` or ``none`` (unassigned)
    assignee: str | None = None
    sort: str = "risk"
    #: one of the user's teams; None: all of them
    team: str | None = None
    #: ``entity:value`` (``merchant:m-77``): only cases linked to it (npusuite.review.links)
    linked: str | None = None


def journal(db: Session, case_obj: Case, actor: str, field: str, old: object, new: object,
             comment: str | None = None) -> None:
    db.add(JournalEntry(case_id=case_obj.id, at=utcnow(), actor=actor, field=field,
                        old_value=None if old is None else str(old), new_value=None if new is None else str(new),
                        comment=comment))


def get_case(db: Session, case_id: int) -> Case:
    found = db.get(Case, case_id)
    if found is None:
        raise NotFoundError(f"no case {case_id}")
    return found


def visible_case(db: Session, case_id: int, me: SessionInfo) -> Case:
    """The case, if it is in one of ME's teams; raises NotFoundError or PermissionDenied."""
    found = get_case(db, case_id)
    if me.role_in(found.team) is None:
        raise PermissionDenied(f"case {case_id} is in the {found.team} team's queue, which you are not in")
    return found


def check_team(me: SessionInfo, team: str | None) -> None:
    if team is not None and team not in TEAMS:
        raise UserError(f"unknown team {team[:32]!r}: use one of {', '.join(TEAMS)}")
    if team is not None and me.role_in(team) is None:
        raise PermissionDenied(f"you are not in the {team} team")


def queue_query(flt: QueueFilter, me: SessionInfo, now: datetime | None = None) -> Select:
    """The SELECT for the queue page and ``GET /api/cases``.  Raises UserError on an unknown sort or team."""
    if flt.sort not in SORTS:
        raise UserError(f"unknown sort {flt.sort!r}: use one of {', '.join(SORTS)}")
    check_team(me, flt.team)
    q = select(Case).where(Case.team.in_([flt.team] if flt.team else me.team_list))
    if flt.kind:
        q = q.where(Case.kind == flt.kind)
    if flt.status == "active":
        q = q.where(Case.status != "closed")
    elif flt.status:
        q = q.where(Case.status == flt.status)
    if flt.decision:
        q = q.where(Case.model_decision == flt.decision)
    if flt.outcome:
        q = q.where(Case.outcome == flt.outcome)
    if flt.reason:
        if flt.reason not in ReasonCode.__members__.values():
            raise UserError(f"unknown reason code {flt.reason[:64]!r}: use one of {', '.join(ReasonCode)}")
        q = q.where(exists().where(CaseReason.case_id == Case.id, CaseReason.code == flt.reason))
    if flt.linked:
        entity, _, value = flt.linked.partition(":")
        if entity not in ENTITY_LABELS or not value:
            raise UserError(f"bad linked filter {flt.linked[:64]!r}: use ENTITY:VALUE, ENTITY one of "
                            f"{', '.join(ENTITY_LABELS)}")
        q = q.where(exists().where(CaseLink.case_id == Case.id, CaseLink.entity == entity, CaseLink.value == value))
    if flt.typology:
        q = q.where(Case.typology == flt.typology)
    if flt.model:
        q = q.where(Case.model == flt.model)
    if flt.assignee == "none":
        q = q.where(Case.assignee_id.is_(None))
    elif flt.assignee == "me":
        q = q.where(Case.assignee_id == me.user_id)
    elif flt.assignee:
        q = q.where(Case.assignee.has(User.username == flt.assignee))
    order = {"risk": [breached_expr(now or utcnow()).desc(), Case.priority.desc(), Case.created_at],
             "age": [Case.created_at, Case.id], "sla": [Case.due_at, Case.priority.desc()]}[flt.sort]
    return q.order_by(*order, Case.id)


def list_cases(db: Session, flt: QueueFilter, me: SessionInfo, limit: int = 100, offset: int = 0,
               now: datetime | None = None) -> list[Case]:
    return list(db.scalars(queue_query(flt, me, now).limit(limit).offset(offset)).unique())


def _takeable_statuses(me: SessionInfo, team: str) -> list[str]:
    return ["open", "escalated"] if me.supervises(team) else ["open"]


def _claim(db: Session, case_id: int, me: SessionInfo, statuses: list[str]) -> str | None:
    """Compare-and-set the holder; returns the status the case had, or None when someone else won."""
    old_status = db.scalar(select(Case.status).where(Case.id == case_id))
    if old_status not in statuses:
        return None
    res = db.execute(
        update(Case)
        .where(Case.id == case_id, Case.assignee_id.is_(None), Case.status == old_status)
        .values(assignee_id=me.user_id, status="in_review", assigned_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return old_status if res.rowcount == 1 else None


def _after_claim(db: Session, case_id: int, me: SessionInfo, old_status: str) -> Case:
    found = get_case(db, case_id)
    journal(db, found, me.username, "assignee", None, me.username)
    journal(db, found, me.username, "status", old_status, "in_review")
    db.commit()
    db.refresh(found)
    logger.info("case %d taken by %s", case_id, me.username)
    return found


def next_case(db: Session, me: SessionInfo, kind: str | None = None, team: str | None = None,
              now: datetime | None = None) -> Case | None:
    """Take and lock the most urgent unassigned case of TEAM (or KIND's team; neither: any of ME's teams).

    None when that queue is empty.  Raises UserError for an unknown kind or team, PermissionDenied for a
    team ME is not in."""
    if kind is not None and team is None:
        if kind not in TEAM_OF_KIND:
            raise UserError(f"unknown kind {kind[:32]!r}: use one of {', '.join(TEAM_OF_KIND)}")
        team = TEAM_OF_KIND[kind]
    check_team(me, team)
    teams = [team] if team else me.team_list
    if not teams:
        return None
    mine = or_(*[and_(Case.team == t, Case.status.in_(_takeable_statuses(me, t))) for t in teams])
    for _ in range(_MAX_TAKE_TRIES):
        q = select(Case.id, Case.team).where(Case.assignee_id.is_(None), mine)
        q = q.order_by(case((Case.status == "escalated", 0), else_=1), breached_expr(now or utcnow()).desc(),
                       Case.priority.desc(), Case.created_at, Case.id)
        row = db.execute(q.limit(1).with_for_update(skip_locked=True)).first()
        if row is None:
            db.rollback()
            return None
        candidate, candidate_team = row
        old_status = _claim(db, candidate, me, _takeable_statuses(me, candidate_team))
        if old_status is not None:
            return _after_claim(db, candidate, me, old_status)
        db.rollback()
    raise CaseStateError("the queue is too busy right now; try again")


def take_case(db: Session, case_id: int, me: SessionInfo) -> Case:
    """Take one case by id.  Raises NotFoundError, CaseStateError (held by someone, closed) or PermissionDenied."""
    found = visible_case(db, case_id, me)
    if found.assignee_id == me.user_id:
        return found
    if found.status == "escalated" and not me.supervises(found.team):
        raise PermissionDenied("escalated cases are for supervisors")
    old_status = _claim(db, case_id, me, _takeable_statuses(me, found.team))
    if old_status is None:
        db.rollback()
        db.expire_all()
        now = get_case(db, case_id)
        who = now.assignee.username if now.assignee else None
        raise CaseStateError(f"case {case_id} is {now.status}" + (f", held by {who}" if who else ""))
    return _after_claim(db, case_id, me, old_status)


def _status_before_take(db: Session, case_id: int) -> str:
    last = db.scalar(select(JournalEntry.old_value)
                     .where(JournalEntry.case_id == case_id, JournalEntry.field == "status",
                            JournalEntry.new_value == "in_review")
                     .order_by(JournalEntry.id.desc()).limit(1))
    return "escalated" if last == "escalated" else "open"


def release_case(db: Session, case_id: int, me: SessionInfo) -> Case:
    """Give a held case back to the queue (to ``escalated`` if it came from there)."""
    found = visible_case(db, case_id, me)
    if found.status != "in_review" or found.assignee_id is None:
        raise CaseStateError(f"case {case_id} is not held by anyone")
    if found.assignee_id != me.user_id and not me.supervises(found.team):
        raise PermissionDenied("only the holder or a supervisor can release a case")
    back_to = _status_before_take(db, case_id)
    holder_id, holder = found.assignee_id, found.assignee.username
    res = db.execute(update(Case).where(Case.id == case_id, Case.status == "in_review", Case.assignee_id == holder_id)
                     .values(assignee_id=None, status=back_to, assigned_at=None)
                     .execution_options(synchronize_session=False))
    if res.rowcount != 1:
        db.rollback()
        raise CaseStateError(f"case {case_id} changed meanwhile; reload it")
    journal(db, found, me.username, "assignee", holder, None)
    journal(db, found, me.username, "status", "in_review", back_to)
    db.commit()
    db.expire(found)
    db.refresh(found)
    return found


def _label_value(kind: str, value: str) -> str:
    """VALUE checked against the vocabulary of KIND's labels; raises UserError naming the choices."""
    if len(value) > 64:
        raise UserError("type too long: at most 64 characters")
    try:
        return (parse_typology(value) if kind == "fraud" else parse_defect_kind(value)).value
    except ValueError as exc:
        raise UserError(str(exc)) from None


@dataclass(frozen=True)
class Decision:
    kind: str
    #: None for escalation
    outcome: str | None
    new_status: str
    comment: str
    label_type: str | None

    def __iter__(self):
        return iter((self.kind, self.outcome, self.new_status, self.comment, self.label_type))


def checked_decision(action: str, comment: str | None, label_type: str | None) -> Decision:
    """ACTION with its comment and type checked (the rules of :func:`decide`); raises UserError."""
    if action not in ACTIONS:
        raise UserError(f"unknown action {str(action)[:32]!r}: use one of {', '.join(ACTIONS)}")
    kind, outcome, new_status = ACTIONS[action]
    comment = (comment or "").strip()
    label_type = (label_type or "").strip() or None
    if not comment:
        raise UserError("a comment is required to close or escalate a case")
    if len(comment) > MAX_COMMENT_CHARS:
        raise UserError(f"comment too long: at most {MAX_COMMENT_CHARS} characters")
    if action == "confirm_defect" and not label_type:
        raise UserError("choose the defect type to confirm a defect")
    if label_type is not None:
        label_type = _label_value(kind, label_type)
    return Decision(kind, outcome, new_status, comment, label_type)


def decide(db: Session, case_id: int, me: SessionInfo, action: str, comment: str | None,
           label_type: str | None = None) -> Case:
    """Apply ACTION to a case the caller holds.

    LABEL_TYPE is the defect type (required for ``confirm_defect``; a DefectKind value) or the
    fraud typology (optional for ``confirm_fraud``; a FraudTypology value).
    Raises NotFoundError, CaseStateError, PermissionDenied, or UserError for a missing comment or type.
    """
    kind, outcome, new_status, comment, label_type = checked_decision(action, comment, label_type)
    found = visible_case(db, case_id, me)
    if found.kind != kind:
        raise UserError(f"action {action!r} is for {kind} cases; case {case_id} is a {found.kind} case")
    if found.status == "closed":
        raise CaseStateError(f"case {case_id} is already closed ({found.outcome})")
    if found.assignee_id != me.user_id:
        raise PermissionDenied(f"take case {case_id} before deciding it")
    old_status, old_outcome, old_typology = found.status, found.outcome, found.typology
    values: dict[str, object] = {"status": new_status}
    if outcome is not None:
        values.update(outcome=outcome, closed_at=utcnow())
        if label_type is not None:
            values["typology"] = label_type
    else:
        values.update(assignee_id=None, assigned_at=None)
    # Compare-and-set, so a double submit or a concurrent release cannot apply a decision twice.
    res = db.execute(update(Case).where(Case.id == case_id, Case.status == old_status, Case.assignee_id == me.user_id)
                     .values(**values).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        db.rollback()
        raise CaseStateError(f"case {case_id} changed meanwhile; reload it")
    if outcome is not None:
        journal(db, found, me.username, "outcome", old_outcome, outcome, comment)
        if label_type is not None and label_type != old_typology:
            journal(db, found, me.username, "typology", old_typology, label_type)
    else:
        journal(db, found, me.username, "assignee", me.username, None)
    journal(db, found, me.username, "status", old_status, new_status, comment)
    db.commit()
    db.expire(found)
    db.refresh(found)
    logger.info("case %d: %s by %s", case_id, action, me.username)
    return found


def journal_for(db: Session, case_id: int) -> list[JournalEntry]:
    return list(db.scalars(select(JournalEntry).where(JournalEntry.case_id == case_id).order_by(JournalEntry.id)))


def recent_journal(db: Session, limit: int = 200) -> list[JournalEntry]:
    return list(db.scalars(select(JournalEntry).order_by(JournalEntry.id.desc()).limit(limit)))


def facets(db: Session) -> dict[str, list[str]]:
    """Distinct values for the queue's filter menus (reasons by code; across teams: values, not cases)."""
    def distinct(col) -> list[str]:
        return [v for v in db.scalars(select(col).distinct().order_by(col)) if v]

    return {
        "model": distinct(Case.model), "reason": distinct(CaseReason.code), "typology": distinct(Case.typology),
        "decision": distinct(Case.model_decision), "assignee": distinct(User.username),
    }
