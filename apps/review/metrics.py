"""Prometheus metrics of the review app, read from the database when scraped.

``npusuite_review_sla_breached_open_cases{team}`` (gauge): cases not closed
at or past their SLA deadline, per team (every team is reported, 0 included),
by the breach rule of :mod:`npusuite.review.sla`.  Counted at scrape time
from the database, so every ``review serve`` process on one database reports
the same figure and nothing is lost when one restarts.  Only counts leave: no
case, user or payload data, so ``GET /metrics`` needs no login, as
Prometheus scrapes expect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session, sessionmaker

from npusuite.platform.observability import names as N
from npusuite.review.models import utcnow
from npusuite.review.sla import breached_open_by_team

logger = logging.getLogger(__name__)

BREACHED_OPEN = N.REVIEW_SLA_BREACHED_OPEN_CASES


class ReviewCollector:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(BREACHED_OPEN, "Open review cases at or past their SLA deadline, per team.",
                                  labels=["team"])
        with self.sessions() as db:
            for team, n in breached_open_by_team(db, self.clock()).items():
                gauge.add_metric([team], n)
        yield gauge


def registry_for(sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReviewCollector(sessions, clock))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
