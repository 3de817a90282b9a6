"""Hostile and unauthorised requests to the new paths over real HTTP: bulk decide, reassign, "next" by
team, the linked filter, other teams' cases and images, the metrics endpoint, and alerts with bad
thresholds.  Every refusal is a 4xx with a reason (JSON under /api/, a page for pages) and changes
nothing."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from npusuite.review.models import Case, JournalEntry

TH = {"review": 0.04, "decline": 0.08}


def _journal_rows(live) -> int:
    with live.db.sessions() as s:
        return s.scalar(select(func.count(JournalEntry.id)))


def _error(resp, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json")
    reason = resp.json()["error"]
    assert reason and "Traceback" not in reason and "Error:" not in reason
    return reason


BAD_BULK = [
    {"ids": [], "action": "confirm_fraud", "comment": "x"},
    {"ids": [0], "action": "confirm_fraud", "comment": "x"},
    {"ids": [2**63], "action": "confirm_fraud", "comment": "x"},
    {"ids": list(range(1, 202)), "action": "confirm_fraud", "comment": "x"},
    {"ids": ["1; DROP TABLE cases"], "action": "confirm_fraud", "comment": "x"},
    {"ids": [1], "action": "x" * 10_000, "comment": "x"},
    {"ids": [1], "action": "confirm_fraud"},
    {"ids": [1], "action": "escalate", "comment": "x"},
    {"ids": [1], "action": "confirm_fraud", "comment": "x", "type": "stolen_card"},
    {"ids": [1], "action": "confirm_fraud", "comment": "x" * 5000},
]


def test_bad_bulk_bodies_are_4xx_and_change_nothing(live, mk):
    mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(thresholds=TH))
    sue = mk.login(live, "sue")
    before = _journal_rows(live)
    for body in BAD_BULK:
        resp = sue.post("/api/cases/bulk-decide", json=body)
        assert resp.status_code in (400, 422), (body, resp.text)
        _error(resp, resp.status_code)
    assert _journal_rows(live) == before


def test_analysts_and_missing_csrf_are_refused_bulk_and_reassign(live, mk):
    case_id = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(thresholds=TH)).json()["case_id"]
    alice = mk.login(live, "alice")
    before = _journal_rows(live)
    assert "supervisor" in _error(alice.post("/api/cases/bulk-decide", json={
        "ids": [case_id], "action": "legitimate", "comment": "fine"}), 403)
    assert "supervisor" in _error(alice.post(f"/api/cases/{case_id}/assign", json={"username": "alice"}), 403)
    page = alice.post("/queue/bulk", data={"csrf_token": alice.headers["X-CSRF-Token"], "case_id": [str(case_id)],
                                           "action": "legitimate", "comment": "fine"})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    sue = mk.login(live, "sue")
    no_csrf = sue.post("/api/cases/bulk-decide", json={"ids": [case_id], "action": "legitimate", "comment": "x"},
                       headers={"X-CSRF-Token": "wrong"})
    _error(no_csrf, 403)
    form = sue.post("/queue/bulk", data={"csrf_token": "wrong", "case_id": [str(case_id)], "action": "legitimate",
                                         "comment": "x"})
    assert form.status_code == 403
    bad_id = sue.post("/queue/bulk", data={"csrf_token": sue.headers["X-CSRF-Token"], "case_id": ["1e9", "-3"],
                                           "action": "legitimate", "comment": "x"})
    assert bad_id.status_code == 400 and "bad case id" in bad_id.text
    assert _error(sue.post(f"/api/cases/{case_id}/assign", json={"username": "x" * 65}), 422)
    assert "not in the fraud team" in _error(sue.post(f"/api/cases/{case_id}/assign", json={"username": "quinn"}), 400)
    assert _journal_rows(live) == before
    ok = sue.post(f"/api/cases/{case_id}/assign", json={"username": "fay"})
    assert ok.status_code == 200 and ok.json()["assignee"] == "fay"


def test_other_teams_cases_and_images_are_403_and_next_by_team_is_checked(live, mk):
    fraud = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(thresholds=TH)).json()["case_id"]
    qc = mk.ingest(live, "/api/ingest/inspections", mk.inspection()).json()["case_id"]
    quinn, fay = mk.login(live, "quinn"), mk.login(live, "fay")
    _error(quinn.get(f"/api/cases/{fraud}"), 403)
    _error(fay.get(f"/cases/{qc}/image.png"), 403)
    assert quinn.get(f"/cases/{qc}/image.png").status_code == 200
    assert fay.get(f"/cases/{qc}").status_code == 403
    _error(quinn.post("/api/cases/next", json={"team": "fraud"}), 403)
    _error(quinn.post("/api/cases/next", json={"kind": "fraud"}), 403)
    _error(quinn.post("/api/cases/next", json={"team": "x" * 40}), 422)
    _error(quinn.post("/api/cases/next", json={"team": "payroll"}), 400)
    assert quinn.post("/api/cases/next", json={}).json()["case"]["id"] == qc
    assert [c["id"] for c in fay.get("/api/cases").json()["cases"]] == [fraud]
    _error(fay.get("/api/cases", params={"team": "qc"}), 403)
    _error(fay.get("/api/cases", params={"linked": "password:x"}), 400)
    _error(fay.get("/api/cases", params={"linked": "merchant:" + "m" * 200}), 422)
    assert fay.get("/queue", params={"linked": "nope"}).status_code == 400
    anonymous = live.url
    import httpx

    assert httpx.get(f"{anonymous}/api/cases/{fraud}").status_code == 401


def test_metrics_need_no_login_and_hold_only_counts(live, mk):
    import httpx

    mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(thresholds=TH, merchant="m-secret-merchant"))
    resp = httpx.get(f"{live.url}/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert 'npusuite_review_sla_breached_open_cases{team="fraud"} 0.0' in resp.text
    assert "m-secret-merchant" not in resp.text and "acct-1" not in resp.text


BAD_THRESHOLDS = [{"review": 0.5, "decline": 0.1}, {"review": 0, "decline": 0.1}, {"review": 0.1, "decline": 1.5},
                  {"review": 0.1}, {"review": "NaN", "decline": 0.2}, {"review": 0.1, "decline": "1e999"}]


def test_alerts_with_bad_thresholds_are_422(live, mk):
    import httpx

    for thresholds in BAD_THRESHOLDS:
        body = json.dumps(mk.alert(thresholds=thresholds)).replace('"1e999"', "1e999")  # overflows to infinity
        resp = httpx.post(f"{live.url}/api/ingest/fraud-alerts", content=body, timeout=30,
                          headers={"Authorization": f"Bearer {live.token}", "Content-Type": "application/json"})
        assert resp.status_code == 422, (thresholds, resp.text)
        assert "thresholds" in resp.json()["error"]
    with live.db.sessions() as s:
        assert s.scalar(select(func.count(Case.id))) == 0
