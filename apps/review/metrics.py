"""Prometheus metrics of the review app, read from the database when scraped.

``npusuite_review_sla_breached_open_cases{team}`` (gauge): cases not closed
at or past their SLA deadline, per team (every team is reported, 0 included),
by the breach rule of :mod:`npusuite.review.sla`.  Counted at scrape time
from the database, so every ``review serve`` process on one database reports
the same figure and nothing is lost when one restarts.  Only counts leave: no
case, user or payload data, so ``GET /metrics`` needs no login, as
Prometheus scrapes expect.

Also ``npusuite_review_backlog_cases{team}`` (cases not closed) and
``npusuite_review_closed_cases_total{kind, outcome}`` (closed cases; QC's
``false_reject`` / (``false_reject`` + ``confirmed_defect``) is the
false-reject rate QC confirmed), and the process/host metrics
(:func:`npusuite.platform.observability.infrastructure.register_infrastructure`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from npusuite.platform.observability import names as N
from npusuite.review.cases import ACTIONS
from npusuite.review.models import Case, utcnow
from npusuite.review.sla import breached_open_by_team
from npusuite.review.teams import TEAMS

logger = logging.getLogger(__name__)

BREACHED_OPEN = N.REVIEW_SLA_BREACHED_OPEN_CASES


class ReviewCollector:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gauge = GaugeMetricFamily(BREACHED_OPEN, "Open review cases at or past their SLA deadline, per team.",
                                  labels=["team"])
        backlog = GaugeMetricFamily(N.REVIEW_BACKLOG_CASES, "Review cases not closed, per team.", labels=["team"])
        closed = CounterMetricFamily(N.REVIEW_CLOSED_CASES, "Closed review cases by kind and outcome (QC's "
                                     "false_reject vs confirmed_defect gives the confirmed false-reject rate).",
                                     labels=["kind", "outcome"])
        with self.sessions() as db:
            for team, n in breached_open_by_team(db, self.clock()).items():
                gauge.add_metric([team], n)
            open_by_team = dict(db.execute(select(Case.team, func.count()).where(Case.status != "closed")
                                           .group_by(Case.team)).all())
            outcomes = db.execute(select(Case.kind, Case.outcome, func.count()).where(Case.status == "closed")
                                  .group_by(Case.kind, Case.outcome)).all()
        for team in TEAMS:
            backlog.add_metric([team], int(open_by_team.get(team, 0)))
        for (kind, action_outcome, _status) in ACTIONS.values():  # every known pair, 0 included
            if action_outcome is not None:
                n = next((c for k, o, c in outcomes if k == kind and o == action_outcome), 0)
                closed.add_metric([kind, action_outcome], int(n))
        yield gauge
        yield backlog
        yield closed


def registry_for(sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> CollectorRegistry:
    from npusuite.platform.observability.infrastructure import register_infrastructure

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReviewCollector(sessions, clock))
    register_infrastructure(registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
