"""SLA breach logic at its boundaries, with a controllable clock: for each team and tier, the minute
before the target (not breached), at it and the minute after (breached); a breach puts the case first
in "next case", shows on the dashboard and in the metrics gauge."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from npusuite.review import cases, ingest, metrics, sla
from npusuite.review.accounts import create_user
from npusuite.review.models import Case
from npusuite.review.web import views

#: (what arrives, team, tier, the config field holding its target)
TARGETS = [
    ("fraud-decline", "fraud", "high", "sla_fraud_decline_min"),
    ("fraud-review", "fraud", "normal", "sla_fraud_review_min"),
    ("qc-severe", "qc", "high", "sla_qc_severe_min"),
    ("qc-reject", "qc", "normal", "sla_inspection_min"),
]
THRESHOLDS = {"review": 0.04, "decline": 0.08}


def _arrive(db, mk, what: str) -> Case:
    with db.sessions() as s:
        if what == "fraud-decline":
            res = ingest.ingest_fraud_alert(s, ingest.parse_fraud_alert(mk.alert(score=0.166, decision="decline",
                                                                                  thresholds=THRESHOLDS)), "t", db.cfg)
        elif what == "fraud-review":
            res = ingest.ingest_fraud_alert(s, ingest.parse_fraud_alert(mk.alert(score=0.05, decision="review",
                                                                                  thresholds=THRESHOLDS)), "t", db.cfg)
        elif what == "qc-severe":
            res = ingest.ingest_inspection(s, ingest.parse_inspection(mk.inspection(score=0.9, threshold=0.5)),
                                           "t", db.cfg)
        else:
            res = ingest.ingest_inspection(s, ingest.parse_inspection(mk.inspection(score=0.6, threshold=0.5)),
                                           "t", db.cfg)
        found = s.get(Case, res.case_id)
        s.expunge(found)
        return found


@pytest.mark.parametrize(("what", "team", "tier", "target_field"), TARGETS)
def test_breach_at_the_minute_before_at_and_after_each_target(db, mk, what, team, tier, target_field):
    case = _arrive(db, mk, what)
    target = getattr(db.cfg, target_field)
    assert (case.team, case.sla_tier) == (team, tier)
    assert case.due_at == case.created_at + timedelta(minutes=target)
    before, at, after = (case.created_at + timedelta(minutes=target + d) for d in (-1, 0, 1))
    assert not sla.is_breached(case.due_at, before)
    assert sla.is_breached(case.due_at, at)
    assert sla.is_breached(case.due_at, after)
    assert views.sla_text(case, before) == ("1 min left", "warn")
    assert views.sla_text(case, at)[1] == "bad" and views.sla_text(case, after)[0] == "breached 1 min ago"
    with db.sessions() as s:
        for now, expected in ((before, 0), (at, 1), (after, 1)):
            board = sla.dashboard(s, now=now)
            assert {t.team: t.breached_open for t in board.teams}[team] == expected
            assert [c.id for c in board.breaches] == ([case.id] if expected else [])
            assert sla.breached_open_by_team(s, now)[team] == expected
    # Closed one minute after the deadline: closed late; at the deadline exactly: met.
    assert not sla.is_breached(case.due_at, after, closed_at=at)
    assert sla.is_breached(case.due_at, after, closed_at=after)


def test_a_breach_puts_the_case_first_in_next_case(db, mk):
    """A review alert that breached goes before a fresh decline (the higher priority)."""
    old = _arrive(db, mk, "fraud-review")
    fresh = _arrive(db, mk, "fraud-decline")
    assert fresh.priority > old.priority
    with db.sessions() as s:
        # The decline arrived later: its deadline is after the review's.
        s.execute(update(Case).where(Case.id == fresh.id).values(due_at=old.due_at + timedelta(hours=1)))
        s.commit()
        me = mk.as_session(create_user(s, "ann", "password-x", "analyst", teams=["fraud"]))
    minute_before = old.due_at - timedelta(minutes=1)
    with db.sessions() as s:
        ordered = [c.id for c in cases.list_cases(s, cases.QueueFilter(), me, now=minute_before)]
        assert ordered == [fresh.id, old.id]
        ordered = [c.id for c in cases.list_cases(s, cases.QueueFilter(), me, now=old.due_at)]
        assert ordered == [old.id, fresh.id]
        assert cases.next_case(s, me, now=old.due_at).id == old.id
        assert cases.next_case(s, me, now=old.due_at).id == fresh.id


def test_metrics_gauge_counts_breached_open_cases_per_team(db, mk):
    case = _arrive(db, mk, "qc-reject")
    _arrive(db, mk, "fraud-review")
    clock = {"now": case.due_at - timedelta(minutes=1)}
    registry = metrics.registry_for(db.sessions, lambda: clock["now"])

    def gauge(team: str) -> float:
        return registry.get_sample_value(metrics.BREACHED_OPEN, {"team": team})

    # The review alert (240 min) breached long before the QC reject (480 min).
    assert (gauge("qc"), gauge("fraud")) == (0.0, 1.0)
    clock["now"] = case.due_at
    assert (gauge("qc"), gauge("fraud")) == (1.0, 1.0)
    text = metrics.exposition(registry).decode()
    assert 'npusuite_review_sla_breached_open_cases{team="qc"} 1.0' in text
    assert "# TYPE npusuite_review_sla_breached_open_cases gauge" in text


def test_metrics_backlog_and_closed_outcomes_give_the_confirmed_false_reject_rate(db, mk):
    qc = _arrive(db, mk, "qc-reject")
    _arrive(db, mk, "qc-severe")
    _arrive(db, mk, "fraud-review")
    registry = metrics.registry_for(db.sessions)
    get = registry.get_sample_value
    assert (get("npusuite_review_backlog_cases", {"team": "qc"}),
            get("npusuite_review_backlog_cases", {"team": "fraud"})) == (2.0, 1.0)
    closed = {"kind": "inspection", "outcome": "false_reject"}
    assert get("npusuite_review_closed_cases_total", closed) == 0.0
    with db.sessions() as s:  # as cases.decide leaves it (the collector only reads these columns)
        row = s.get(Case, qc.id)
        row.status, row.outcome = "closed", "false_reject"
        s.commit()
    assert get("npusuite_review_closed_cases_total", closed) == 1.0
    assert get("npusuite_review_closed_cases_total", {"kind": "inspection", "outcome": "confirmed_defect"}) == 0.0
    assert get("npusuite_review_backlog_cases", {"team": "qc"}) == 1.0
    assert get("npusuite_process_resident_memory_bytes") > 0


def test_sla_targets_are_per_team_and_tier(sqlite_db):
    cfg = sqlite_db.cfg.model_copy(update={"sla_qc_severe_min": 30.0})
    assert cfg.sla_target_min("qc", "high") == 30.0
    assert cfg.sla_target_min("qc", "normal") == cfg.sla_inspection_min
    assert cfg.sla_target_min("fraud", "high") == cfg.sla_fraud_decline_min
    assert cfg.sla_target_min("fraud", "normal") == cfg.sla_fraud_review_min
    assert datetime(2026, 1, 1) + timedelta(minutes=cfg.sla_target_min("qc", "high")) == datetime(2026, 1, 1, 0, 30)
