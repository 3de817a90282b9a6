"""Service levels: the breach rule, and the supervisor dashboard's figures per team.

Rules:

- Targets are per team and SLA tier (:meth:`ReviewConfig.sla_target_min`;
  the tier comes from :mod:`npusuite.review.risk`): ``due_at`` = arrival +
  target.
- A case not closed breaches at its deadline: :func:`is_breached` is
  ``now >= due_at`` (a minute before: not yet; at the deadline and after:
  breached).  A closed case breached when it closed after ``due_at``.
- A breach raises the case's priority: queues and "next case" put breached
  cases first (:func:`breached_expr`), before any priority or score, so the
  oldest debt is paid first.
- Open (not closed) cases are counted in age buckets by time since arrival:
  ``AGE_BUCKETS`` (upper bounds in minutes, the last one open-ended), one
  set per team; the chart is in :mod:`npusuite.review.sla_chart`.
- Every figure takes ``now`` from the caller (a clock passed in), never reads
  the time itself except as a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from npusuite.review.models import Case, User, utcnow
from npusuite.review.teams import TEAMS

#: (label, upper bound in minutes); None = no bound.
AGE_BUCKETS: list[tuple[str, float | None]] = [("< 15 min", 15), ("15-60 min", 60), ("1-4 h", 240),
                                               ("4-24 h", 1440), ("> 24 h", None)]


def is_breached(due_at: datetime, now: datetime, closed_at: datetime | None = None) -> bool:
    """The breach rule: open at or past the deadline, or closed after it."""
    return closed_at > due_at if closed_at is not None else now >= due_at


def breached_expr(now: datetime) -> ColumnElement:
    """1 for a breached open case, else 0 (SQL, for ordering: breached first)."""
    return case(((Case.status != "closed") & (Case.due_at <= now), 1), else_=0)


@dataclass
class TeamStats:
    team: str
    open_total: int = 0
    in_review: int = 0
    escalated: int = 0
    breached_open: int = 0
    closed_24h: int = 0
    closed_late_24h: int = 0
    #: per age bucket: (within SLA, breached)
    buckets: list[list[int]] = field(default_factory=lambda: [[0, 0] for _ in AGE_BUCKETS])
    oldest_open_min: float | None = None


@dataclass
class Dashboard:
    at: datetime
    teams: list[TeamStats]
    #: (team, user name, cases held now)
    workload: list[tuple[str, str, int]]
    breaches: list[Case]


def _bucket(age_min: float) -> int:
    for i, (_label, bound) in enumerate(AGE_BUCKETS):
        if bound is None or age_min < bound:
            return i
    return len(AGE_BUCKETS) - 1


def dashboard(db: Session, now: datetime | None = None, breach_list_limit: int = 50,
              teams: list[str] | None = None) -> Dashboard:
    """Figures for TEAMS (default: all)."""
    now = now or utcnow()
    teams = list(teams if teams is not None else TEAMS)
    stats = {t: TeamStats(t) for t in teams}
    rows = db.execute(select(Case.team, Case.status, Case.created_at, Case.due_at)
                      .where(Case.status != "closed", Case.team.in_(teams)))
    for team, status, created_at, due_at in rows:
        s = stats[team]
        s.open_total += 1
        s.in_review += status == "in_review"
        s.escalated += status == "escalated"
        age_min = (now - created_at).total_seconds() / 60
        breached = is_breached(due_at, now)
        s.breached_open += breached
        s.buckets[_bucket(age_min)][1 if breached else 0] += 1
        s.oldest_open_min = max(s.oldest_open_min or 0.0, age_min)
    since = now - timedelta(hours=24)
    for team, closed_at, due_at in db.execute(
            select(Case.team, Case.closed_at, Case.due_at)
            .where(Case.status == "closed", Case.closed_at >= since, Case.team.in_(teams))):
        stats[team].closed_24h += 1
        stats[team].closed_late_24h += is_breached(due_at, now, closed_at)
    workload = [(team, name, n) for team, name, n in db.execute(
        select(Case.team, User.username, func.count(Case.id)).join(Case, Case.assignee_id == User.id)
        .where(Case.status == "in_review", Case.team.in_(teams)).group_by(Case.team, User.username)
        .order_by(Case.team, func.count(Case.id).desc(), User.username))]
    breaches = list(db.scalars(select(Case).where(Case.status != "closed", Case.due_at <= now, Case.team.in_(teams))
                               .order_by(Case.due_at).limit(breach_list_limit)).unique())
    return Dashboard(now, list(stats.values()), workload, breaches)


def breached_open_by_team(db: Session, now: datetime) -> dict[str, int]:
    """{team: open cases at or past their deadline}, every team present (for the metrics gauge)."""
    counts = dict(db.execute(select(Case.team, func.count()).where(Case.status != "closed", Case.due_at <= now)
                             .group_by(Case.team)).all())
    return {t: int(counts.get(t, 0)) for t in TEAMS}


