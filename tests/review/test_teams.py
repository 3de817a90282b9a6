"""Teams and their queues, risk on the model's thresholds, linked cases and the supervisors' actions,
on SQLite and PostgreSQL (the workflow functions, no HTTP; tests/review/test_triage_browser.py drives
the same through Chromium)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from npusuite.platform.errors import UserError
from npusuite.review import cases, ingest, links, supervision
from npusuite.review.accounts import create_user
from npusuite.review.cases import PermissionDenied
from npusuite.review.models import Case, JournalEntry, utcnow
from npusuite.review.risk import fraud_risk, inspection_risk

THRESHOLDS = {"review": 0.04, "decline": 0.08}


def _alert(db, mk, **kw) -> int:
    with db.sessions() as s:
        return ingest.ingest_fraud_alert(s, ingest.parse_fraud_alert(mk.alert(**kw)), "t", db.cfg).case_id


def _inspection(db, mk, **kw) -> int:
    with db.sessions() as s:
        return ingest.ingest_inspection(s, ingest.parse_inspection(mk.inspection(**kw)), "t", db.cfg).case_id


def _people(db, mk):
    with db.sessions() as s:
        return (mk.as_session(create_user(s, "quinn", "password-q", "analyst", teams=["qc"])),
                mk.as_session(create_user(s, "fay", "password-f", "analyst", teams=["fraud"])),
                mk.as_session(create_user(s, "sue", "password-s", "supervisor",
                                          teams=["fraud:supervisor", "qc:analyst"])))


def test_bands_follow_the_models_thresholds_not_a_0_to_1_scale():
    assert fraud_risk(0.166, "decline", THRESHOLDS).band == "decline"
    assert fraud_risk(0.05, "review", THRESHOLDS).band == "review"
    assert fraud_risk(0.03, "review", THRESHOLDS).band == "approve"  # the band says what the model card says
    assert fraud_risk(0.08, "review", THRESHOLDS).band == "decline"  # at the threshold: declined
    r = fraud_risk(0.166, "decline", THRESHOLDS)
    assert r.ratio == pytest.approx(0.166 / 0.08) and r.source == "model" and r.tier == "high"
    old = fraud_risk(0.166, "decline", None)  # an older scorer: the decision it made, and no ratio
    assert (old.band, old.ratio, old.source) == ("decline", None, "decision")
    assert fraud_risk(0.9, "review", None).band == "review"
    assert inspection_risk(0.6, 0.5).band == "reject" and inspection_risk(0.75, 0.5).band == "severe"
    assert inspection_risk(0.4, 0.5).band == "pass" and inspection_risk(0.4, 0.0).band == "reject"
    # Priority: the band dominates, the score orders inside it.
    assert fraud_risk(0.09, "decline", THRESHOLDS).priority > fraud_risk(0.07, "review", THRESHOLDS).priority
    assert fraud_risk(0.99, "review", {"review": 0.5, "decline": 0.995}).priority < \
        fraud_risk(0.09, "decline", THRESHOLDS).priority


def test_each_team_has_its_own_queue_and_next_case(db, mk):
    quinn, fay, sue = _people(db, mk)
    for i in range(3):
        _alert(db, mk, score=0.9 - i / 10, thresholds=THRESHOLDS)
    qc = _inspection(db, mk, score=0.55)
    with db.sessions() as s:
        assert [c.id for c in cases.list_cases(s, cases.QueueFilter(), quinn)] == [qc]
        assert {c.team for c in cases.list_cases(s, cases.QueueFilter(), fay)} == {"fraud"}
        taken = cases.next_case(s, quinn)
        assert taken.id == qc and taken.kind == "inspection"
        assert cases.next_case(s, quinn) is None  # the fraud cases are not QC's, whatever their priority
        with pytest.raises(PermissionDenied):
            cases.next_case(s, quinn, kind="fraud")
        with pytest.raises(PermissionDenied):
            cases.next_case(s, quinn, team="fraud")
        with pytest.raises(UserError):
            cases.next_case(s, quinn, team="nope")
        fraud_case = s.scalar(select(Case.id).where(Case.kind == "fraud"))
        with pytest.raises(PermissionDenied):
            cases.visible_case(s, fraud_case, quinn)
        with pytest.raises(PermissionDenied):
            cases.take_case(s, fraud_case, quinn)
        assert cases.next_case(s, fay).kind == "fraud"
        # sue supervises fraud, is an analyst in QC: she may release fay's fraud case, not quinn's QC case.
        held = s.scalar(select(Case.id).where(Case.assignee_id == fay.user_id))
        assert cases.release_case(s, held, sue).status == "open"
        with pytest.raises(PermissionDenied):
            cases.release_case(s, qc, sue)


def test_reassign_is_for_supervisors_of_the_team(db, mk):
    quinn, fay, sue = _people(db, mk)
    case_id = _alert(db, mk, thresholds=THRESHOLDS)
    with db.sessions() as s:
        with pytest.raises(PermissionDenied):
            supervision.reassign(s, case_id, fay, "fay")
        with pytest.raises(UserError, match="not in the fraud team"):
            supervision.reassign(s, case_id, sue, "quinn")
        with pytest.raises(UserError, match="no active user"):
            supervision.reassign(s, case_id, sue, "nobody")
        got = supervision.reassign(s, case_id, sue, "fay")
        assert (got.status, got.assignee.username) == ("in_review", "fay")
        rows = [(e.field, e.old_value, e.new_value, e.actor) for e in cases.journal_for(s, case_id)][1:]
        assert rows == [("assignee", None, "fay", "sue"), ("status", "open", "in_review", "sue")]


def test_bulk_close_one_merchant_one_journal_entry_each(db, mk):
    quinn, fay, sue = _people(db, mk)
    ids = [_alert(db, mk, score=0.1, merchant="m-cardtest", thresholds=THRESHOLDS) for _ in range(40)]
    other = _alert(db, mk, merchant="m-other")
    qc = _inspection(db, mk)
    with db.sessions() as s:
        held = cases.take_case(s, ids[0], fay).id
        with pytest.raises(PermissionDenied):
            supervision.bulk_decide(s, fay, ids, "confirm_fraud", "card testing run")
        with pytest.raises(PermissionDenied):
            supervision.bulk_decide(s, sue, [qc], "false_reject", "fine")  # sue is only an analyst in QC
        with pytest.raises(UserError, match="comment"):
            supervision.bulk_decide(s, sue, ids, "confirm_fraud", " ")
        with pytest.raises(UserError, match="one by one"):
            supervision.bulk_decide(s, sue, ids, "escalate", "x")
        with pytest.raises(UserError, match="at most"):
            supervision.bulk_decide(s, sue, list(range(1, 300)), "legitimate", "x")
        with pytest.raises(UserError):
            supervision.bulk_decide(s, sue, ids, "confirm_fraud", "x", "not_a_typology")
        merchant_cases = [c.id for c in cases.list_cases(s, cases.QueueFilter(linked="merchant:m-cardtest"), sue,
                                                          limit=500)]
        assert sorted(merchant_cases) == sorted(ids)
        with pytest.raises(UserError, match="linked filter"):
            cases.list_cases(s, cases.QueueFilter(linked="password:x"), sue)
        result = supervision.bulk_decide(s, sue, [*ids, qc, 2**31 - 1], "confirm_fraud", "card testing run",
                                         "card_testing")
        assert sorted(result.closed) == sorted(i for i in ids if i != held)
        assert dict(result.skipped) == {held: "held by fay", qc: "a inspection case", 2**31 - 1: "no such case"}
        again = supervision.bulk_decide(s, sue, ids, "confirm_fraud", "card testing run")
        assert again.closed == [] and all(why in ("already closed", "held by fay") for _, why in again.skipped)
        for case_id in result.closed:
            entries = s.scalars(select(JournalEntry).where(JournalEntry.case_id == case_id,
                                                           JournalEntry.actor == "sue")).all()
            assert [(e.field, e.new_value) for e in entries] == [("outcome", "confirmed_fraud")]
            assert "card testing run" in entries[0].comment and "card_testing" in entries[0].comment
            c = s.get(Case, case_id)
            assert (c.status, c.outcome, c.typology, c.assignee_id) == ("closed", "confirmed_fraud", "card_testing",
                                                                        sue.user_id)
        assert s.get(Case, other).status == "open"


def test_linked_cases_by_entity_and_the_qc_false_reject_rate(db, mk):
    quinn, fay, sue = _people(db, mk)
    first = _alert(db, mk, merchant="m-1", account="acct-A", thresholds=THRESHOLDS)
    _alert(db, mk, merchant="m-1", account="acct-B", thresholds=THRESHOLDS)
    third = _alert(db, mk, merchant="m-2", account="acct-A", thresholds=THRESHOLDS)
    decided = [_inspection(db, mk) for _ in range(4)]
    with db.sessions() as s:
        for i, case_id in enumerate(decided[:3]):
            cases.take_case(s, case_id, quinn)
            cases.decide(s, case_id, quinn, "false_reject" if i < 2 else "confirm_defect", "seen",
                         None if i < 2 else "crack")
        cases.take_case(s, first, fay)
        cases.decide(s, first, fay, "confirm_fraud", "called the customer")
        ctx = links.linked_context(s, cases.get_case(s, third), utcnow())
        by = {e.entity: e for e in ctx.entities}
        assert set(by) == {"account", "card", "device", "ip_net", "merchant"}
        assert (by["account"].open, by["account"].confirmed) == (0, 1)  # the first case, confirmed
        assert by["merchant"].total == 0
        assert by["card"].total == 2 and by["ip_net"].value == "10.0"
        qctx = links.linked_context(s, cases.get_case(s, decided[3]), utcnow())
        assert qctx.false_rejects == (2, 3) and qctx.false_reject_rate == pytest.approx(2 / 3)
        assert {e.entity: e.total for e in qctx.entities} == {"line": 3, "product": 3, "model": 3}
