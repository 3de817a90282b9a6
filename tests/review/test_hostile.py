"""Hostile input over real HTTP (issue 12): every bad request gets a 4xx with a JSON reason (an HTML page for
pages), never a text/plain 500 or an exception's type, nothing hostile is stored, and the next request works."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from sqlalchemy import func, select

from npusuite.review.models import Case

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_IDS = [2**63, 2**63 + 1, 2**64, 2**31, -1, 0]


def _assert_json_error(resp: httpx.Response, status: int | tuple[int, ...]) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json"), resp.headers["content-type"]
    reason = resp.json()["error"]
    assert isinstance(reason, str) and reason
    for leak in ("Error:", "Traceback", "OverflowError", "RecursionError", "sqlalchemy", "psycopg"):
        assert leak not in reason, reason
    return reason


def _cases(live) -> int:
    with live.db.sessions() as s:
        return s.scalar(select(func.count(Case.id)))


def test_huge_ids_and_paging_are_4xx_json_not_500(live, mk):
    """Defect 8: a case id, offset or page of 2^63 or more answered a text/plain 500."""
    made = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert()).json()["case_id"]
    alice = mk.login(live, "alice")
    for case_id in HUGE_IDS:
        _assert_json_error(alice.get(f"/api/cases/{case_id}"), (404, 422))
        _assert_json_error(alice.post(f"/api/cases/{case_id}/take"), (404, 422))
        _assert_json_error(alice.post(f"/api/cases/{case_id}/decide", json={"action": "legitimate"}), (404, 422))
        _assert_json_error(alice.get(f"/cases/{case_id}/image.png"), (404, 422))
        page = alice.get(f"/cases/{case_id}")
        assert page.status_code in (404, 422) and page.headers["content-type"].startswith("text/html")
    for offset in (2**63, 2**64, 10**30):
        _assert_json_error(alice.get("/api/cases", params={"offset": offset}), 422)
    for number in (2**63, 2**62, 10**30):
        page = alice.get("/queue", params={"page": number})
        assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
        assert "OverflowError" not in page.text and "Traceback" not in page.text
    assert alice.get(f"/api/cases/{made}").status_code == 200  # and the app still works


def test_ingest_of_deep_nesting_is_400_json_and_the_next_request_works(live, mk):
    """Defect 8 (ingest): 100000 nested arrays raised RecursionError, a text/plain 500."""
    url = f"{live.url}/api/ingest/fraud-alerts"
    auth = {"Authorization": f"Bearer {live.token}"}
    for body in (DEEP, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        reason = _assert_json_error(httpx.post(url, content=body, headers=auth, timeout=60), 400)
        assert "nested" in reason
    assert mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert()).status_code == 201


def test_non_finite_numbers_are_refused_at_ingest(live, mk):
    """Defect 9: NaN in features, latency and boxes was stored and the page rendered ``left:nan%``."""
    auth = {"Authorization": f"Bearer {live.token}"}
    alerts = f"{live.url}/api/ingest/fraud-alerts"
    inspections = f"{live.url}/api/ingest/inspections"
    bad_alerts = [{**mk.alert(), "latency_ms": math.nan}, {**mk.alert(), "features": {"amount_z": math.inf}},
                  {**mk.alert(), "latency_ms": -math.inf}]
    for alert in bad_alerts:  # Python's json writes NaN / Infinity, which JSON does not have
        reason = _assert_json_error(httpx.post(alerts, content=json.dumps(alert), headers=auth), 400)
        assert "NaN" in reason or "Infinity" in reason
    for field, value in (("latency_ms", "1e999"), ("features", '{"amount_z": -1e999}')):  # overflows to inf
        body = json.dumps({**mk.alert(), field: "X"}).replace('"X"', value)
        reason = _assert_json_error(httpx.post(alerts, content=body, headers=auth), 422)
        assert field in reason
    rec = mk.inspection()
    body = json.dumps({**rec, "boxes": [[8, 6, "X", 12]]}).replace('"X"', "1e999")
    assert "boxes" in _assert_json_error(httpx.post(inspections, content=body, headers=auth), 422)
    nan_box = json.dumps({**rec, "boxes": [[math.nan, 6, 20, 12]]})
    _assert_json_error(httpx.post(inspections, content=nan_box, headers=auth), 400)
    for box in ([-5, 6, 20, 12], [60, 6, 20, 12], [8, 40, 20, 12], [1e308, 0, 1, 1], [8, 6, -1, 12]):
        reason = _assert_json_error(httpx.post(inspections, json={**rec, "boxes": [box]}, headers=auth), 422)
        assert "boxes.0" in reason
    assert _cases(live) == 0  # nothing hostile was stored
    edge = mk.ingest(live, "/api/ingest/inspections", {**rec, "boxes": [[0, 0, 64, 48], [40, 30, 25, 19]]})
    assert edge.status_code == 201  # boxes up to the image's edge (one pixel of rounding) are fine
    alice = mk.login(live, "alice")
    page = alice.get(f"/cases/{edge.json()['case_id']}").text
    assert "nan%" not in page and "inf%" not in page


def test_a_reason_longer_than_its_row_makes_a_case_with_a_visible_cut(live, mk):
    """Defect 7: a declined alert whose reason ran past 256 characters answered 422 and never became a case."""
    long_reason = "amount: " + "1" + "0" * 308 + " is far above the account's usual amounts " + "x" * 100
    assert len(long_reason) > 256
    made = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(reasons=["new_device", long_reason]))
    assert made.status_code == 201, made.text
    alice = mk.login(live, "alice")
    case = alice.get(f"/api/cases/{made.json()['case_id']}").json()
    assert case["reasons"][0] == "new_device"
    assert len(case["reasons"][1]) == 256 and case["reasons"][1].endswith("\u2026")
    assert long_reason.startswith(case["reasons"][1][:-1])
    assert case["payload"]["reasons"][1] == long_reason  # the evidence keeps it whole
    too_long = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(reasons=["x" * 5000]))
    assert "reasons" in _assert_json_error(too_long, 422)


def test_a_timestamp_that_overflows_is_422_not_500(live, mk):
    """A transaction of year 1 with a positive offset raised OverflowError (not a ValueError) in validation."""
    alert = mk.alert()
    alert["transaction"]["timestamp"] = "0001-01-01T00:00:00+01:00"
    _assert_json_error(mk.ingest(live, "/api/ingest/fraud-alerts", alert), 422)


def test_login_spraying_over_http_is_429(live):
    """Defect 11a: one password tried on many user names from one address was never slowed."""
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as c:
        csrf = c.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        statuses = [c.post("/login", data={"username": f"user{i}", "password": "Summer2026!",
                                           "csrf_token": csrf}).status_code for i in range(20)]
        assert statuses == [401] * 20
        sprayed = c.post("/login", data={"username": "bob", "password": live.passwords["bob"], "csrf_token": csrf})
        assert sprayed.status_code == 429 and int(sprayed.headers["retry-after"]) > 0


@pytest.mark.parametrize("path", ["/admin/users/" + "u" * 300 + "/active", "/admin/tokens/" + "t" * 300 + "/revoke"])
def test_overlong_names_in_admin_paths_are_422(live, mk, path):
    ada = mk.login(live, "ada")
    resp = ada.post(path, data={"csrf_token": ada.headers["X-CSRF-Token"], "active": "0"})
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("text/html")


def test_health_and_readiness_without_a_consumer(live):
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok"}
