"""The app over real HTTP (uvicorn on a free port, httpx): auth, CSRF, ingest, pages, APIs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy import text

from npusuite.platform.kafka.broker import free_port

PAGES = ["/", "/queue", "/cases/1", "/journal", "/dashboard"]
APIS = ["/api/me", "/api/cases", "/api/cases/1", "/cases/1/image.png", "/cases/1/heatmap.png"]


def test_without_a_session_pages_redirect_and_apis_answer_401(live, mk):
    mk.ingest(live, "/api/ingest/inspections", mk.inspection())
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as anon:
        for path in PAGES:
            resp = anon.get(path)
            assert resp.status_code == 303, path
            assert resp.headers["location"].startswith("/login?next="), path
        for path in APIS:
            resp = anon.get(path)
            assert resp.status_code == 401, path
            assert resp.json() == {"error": "login required"}
        for path in ("/api/cases/next", "/api/cases/1/decide", "/api/cases/1/take"):
            assert anon.post(path, json={}).status_code == 401, path
        for path in ("/queue/next", "/cases/1/decide", "/cases/1/take"):
            assert anon.post(path, data={}).status_code == 303, path
        # A forged cookie is no session either.
        anon.cookies.set("npr_session", "forged")
        assert anon.get("/api/cases").status_code == 401


def test_post_without_csrf_token_is_refused(live, mk):
    made = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert()).json()
    alice = mk.login(live, "alice")
    good = alice.headers.pop("X-CSRF-Token")
    assert alice.post("/api/cases/next", json={}).status_code == 403
    assert alice.post("/api/cases/next", json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert alice.post("/queue/next", data={}).status_code == 403
    assert alice.post(f"/cases/{made['case_id']}/take", data={"csrf_token": "nope"}).status_code == 403
    assert alice.post("/logout", data={}).status_code == 403
    with live.db.sessions() as s:  # nothing happened
        assert s.execute(text("SELECT assignee_id FROM cases")).scalar() is None
    taken = alice.post("/queue/next", data={"csrf_token": good})
    assert taken.status_code == 303 and taken.headers["location"] == f"/cases/{made['case_id']}"


def test_login_refuses_wrong_password_and_rate_limits(live):
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as c:
        csrf = c.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        no_csrf = c.post("/login", data={"username": "alice", "password": live.passwords["alice"]})
        assert no_csrf.status_code == 403 and "npr_session" not in no_csrf.cookies
        for _ in range(5):
            resp = c.post("/login", data={"username": "alice", "password": "wrong", "csrf_token": csrf})
            assert resp.status_code == 401 and "Wrong user name or password" in resp.text
            assert "npr_session" not in resp.cookies
        unknown = c.post("/login", data={"username": "nobody", "password": "wrong", "csrf_token": csrf})
        assert unknown.status_code == 401
        limited = c.post("/login", data={"username": "alice", "password": live.passwords["alice"],
                                         "csrf_token": csrf})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        # Another user from the same address is not locked out by alice's failures.
        ok = c.post("/login", data={"username": "bob", "password": live.passwords["bob"], "csrf_token": csrf})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie


def test_passwords_and_tokens_are_not_stored_in_plain_text(live):
    with live.db.engine.connect() as conn:
        hashes = dict(conn.execute(text("SELECT username, password_hash FROM users")).all())
        tokens = [r[0] for r in conn.execute(text("SELECT token_sha256 FROM service_tokens"))]
        dump = "\n".join(str(row) for table in ("users", "service_tokens", "web_sessions")
                         for row in conn.execute(text(f"SELECT * FROM {table}")))
    for name, password in live.passwords.items():
        assert hashes[name].startswith("$argon2id$")
        assert password not in dump
    assert live.token not in dump and len(tokens) == 1


def test_ingest_contract(live, mk):
    rec = mk.inspection("line1-000001")
    first = mk.ingest(live, "/api/ingest/inspections", rec)
    assert first.status_code == 201 and first.json()["created"] is True
    again = mk.ingest(live, "/api/ingest/inspections", rec)
    assert again.status_code == 200 and again.json() == {"case_id": first.json()["case_id"], "created": False}
    url = f"{live.url}/api/ingest/inspections"
    assert httpx.post(url, json=rec).status_code == 401
    bad_token = httpx.post(url, json=rec, headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401 and "error" in bad_token.json()
    auth = {"Authorization": f"Bearer {live.token}"}
    not_json = httpx.post(url, content=b"{nope", headers=auth)
    assert not_json.status_code == 400 and "error" in not_json.json()
    not_png = httpx.post(url, json={**rec, "id": "x2", "image_png_b64": "aGVsbG8="}, headers=auth)
    assert not_png.status_code == 422 and "image_png_b64" in not_png.json()["error"]
    missing = httpx.post(url, json={k: v for k, v in rec.items() if k != "score"}, headers=auth)
    assert missing.status_code == 422 and "score" in missing.json()["error"]
    alert = mk.alert()
    assert mk.ingest(live, "/api/ingest/fraud-alerts", alert).status_code == 201
    assert mk.ingest(live, "/api/ingest/fraud-alerts", alert).status_code == 200
    wrong = mk.ingest(live, "/api/ingest/fraud-alerts", {**alert, "transaction_id": "other"})
    assert wrong.status_code == 422


def test_env_token_is_accepted(sqlite_db, mk):
    made = sqlite_db.__class__(sqlite_db.url, sqlite_db.engine, sqlite_db.sessions,
                               sqlite_db.cfg.model_copy(update={"env_ingest_token": "from-the-env-123"}))
    server, info = mk.start_live(made)
    with server:
        resp = httpx.post(f"{info.url}/api/ingest/inspections", json=mk.inspection(),
                          headers={"Authorization": "Bearer from-the-env-123"})
        assert resp.status_code == 201
        assert "from-the-env-123" not in repr(made.cfg)


def test_case_pages_images_and_roles(live, mk):
    insp = mk.ingest(live, "/api/ingest/inspections", mk.inspection()).json()["case_id"]
    fraud = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(rationale="Burst of small ecommerce charges.")).json()
    alice = mk.login(live, "alice")
    page = alice.get(f"/cases/{fraud['case_id']}")
    assert page.status_code == 200 and "Burst of small ecommerce charges." in page.text
    assert "fraud-mlp@3" in page.text and "amount_spike" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    image = alice.get(f"/cases/{insp}/image.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert alice.get(f"/cases/{insp}/heatmap.png").status_code == 200
    assert 'class="box"' in alice.get(f"/cases/{insp}").text
    assert alice.get("/dashboard").status_code == 403
    assert alice.get("/cases/999").status_code == 404
    assert alice.get("/api/cases/999").json()["error"] == "no case 999"
    sue = mk.login(live, "sue")
    board = sue.get("/dashboard")
    assert board.status_code == 200 and "<svg" in board.text and "Open cases by age" in board.text


def test_decision_over_http_reaches_the_journal(live, mk):
    made = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert()).json()
    alice = mk.login(live, "alice")
    taken = alice.post("/api/cases/next", json={"kind": "fraud"}).json()["case"]
    assert taken["id"] == made["case_id"] and taken["assignee"] == "alice"
    refused = alice.post(f"/api/cases/{taken['id']}/decide", json={"action": "confirm_fraud"})
    assert refused.status_code == 400 and "comment" in refused.json()["error"]
    done = alice.post(f"/api/cases/{taken['id']}/decide", json={"action": "confirm_fraud", "comment": "confirmed"})
    assert done.status_code == 200
    last = done.json()["journal"][-1]
    assert (last["actor"], last["field"], last["old"], last["new"], last["comment"]) == \
        ("alice", "status", "in_review", "closed", "confirmed")
    again = alice.post(f"/api/cases/{taken['id']}/decide", json={"action": "legitimate", "comment": "x"})
    assert again.status_code == 409


@pytest.mark.parametrize("n_cases", [1, 5])
def test_two_users_racing_for_next_case_over_http(live, mk, n_cases):
    for _ in range(n_cases):
        mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert())
    clients = {name: mk.login(live, name) for name in ("alice", "bob")}
    got: dict[str, list[int]] = {name: [] for name in clients}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        barrier.wait(timeout=60)
        while (case := clients[name].post("/api/cases/next", json={}).json()["case"]) is not None:
            got[name].append(case["id"])

    threads = [threading.Thread(target=work, args=(n,)) for n in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    all_ids = got["alice"] + got["bob"]
    assert len(all_ids) == n_cases and len(set(all_ids)) == n_cases


def test_logout_ends_the_session_on_the_server(live, mk):
    alice = mk.login(live, "alice")
    stolen = alice.cookies.get("npr_session")
    csrf = alice.headers["X-CSRF-Token"]
    assert alice.post("/logout", data={"csrf_token": csrf}).status_code == 303
    replay = httpx.get(f"{live.url}/api/cases", cookies={"npr_session": stolen}, timeout=30)
    assert replay.status_code == 401


def test_expired_session_is_refused(live, mk):
    alice = mk.login(live, "alice")
    assert alice.get("/api/cases").status_code == 200
    with live.db.engine.begin() as conn:  # move the expiry into the past instead of waiting for it
        conn.execute(text("UPDATE web_sessions SET expires_at = '2000-01-01 00:00:00'"))
    assert alice.get("/api/cases").status_code == 401
    with live.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM web_sessions")).scalar() == 0  # and it is gone


def test_unknown_routes_and_methods_answer_json_errors(live, mk):
    alice = mk.login(live, "alice")
    assert alice.get("/api/nope").json() == {"error": "Not Found"}
    wrong_method = alice.get("/api/ingest/inspections")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert alice.get("/api/cases", params={"sort": "sideways"}).status_code == 400


def test_evidence_is_escaped_in_pages(live, mk):
    evil = "<script>alert(1)</script>"
    made = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(rationale=evil, reasons=["<b>x</b>"])).json()
    alice = mk.login(live, "alice")
    page = alice.get(f"/cases/{made['case_id']}").text
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in alice.get("/queue").text
    login_page = httpx.get(f"{live.url}/login", params={"next": '/queue"><script>x</script>'}, timeout=30).text
    assert "<script>x</script>" not in login_page


def test_admin_revokes_tokens_and_deactivates_users(live, mk):
    assert mk.ingest(live, "/api/ingest/inspections", mk.inspection()).status_code == 201
    bob = mk.login(live, "bob")
    assert bob.get("/admin").status_code == 403
    sue = mk.login(live, "sue")
    assert sue.get("/admin").status_code == 403
    ada = mk.login(live, "ada")
    csrf = ada.headers["X-CSRF-Token"]
    page = ada.get("/admin")
    assert page.status_code == 200 and "tests" in page.text and "bob" in page.text
    assert ada.post("/admin/tokens/tests/revoke", data={}).status_code == 403  # no CSRF token
    assert ada.post("/admin/tokens/tests/revoke", data={"csrf_token": csrf}).status_code == 303
    assert mk.ingest(live, "/api/ingest/inspections", mk.inspection()).status_code == 401
    assert ada.post("/admin/users/bob/active", data={"csrf_token": csrf, "active": "0"}).status_code == 303
    assert bob.get("/api/cases").status_code == 401
    assert ada.post("/admin/users/ada/active", data={"csrf_token": csrf, "active": "0"}).status_code == 400
    assert ada.post("/admin/tokens/nope/revoke", data={"csrf_token": csrf}).status_code == 404


def test_failed_logins_count_across_review_processes(live):
    """A second ``npusuite review serve`` process on the same database refuses what the first one counted."""
    port = free_port()
    other = subprocess.Popen([sys.executable, "-m", "npusuite.platform", "review", "serve", "--db", live.db.url,
                              "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        other_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{other_url}/login", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert other.poll() is None and time.monotonic() < deadline, other.stderr.read().decode()[-2000:]
            time.sleep(0.2)

        def attempt(url: str, password: str) -> int:
            with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as c:
                csrf = c.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                return c.post("/login", data={"username": "alice", "password": password,
                                              "csrf_token": csrf}).status_code

        # 3 failures here and 2 there make the default limit of 5, so both processes refuse.
        assert [attempt(u, "wrong") for u in (live.url, other_url, live.url, other_url, live.url)] == [401] * 5
        assert attempt(other_url, live.passwords["alice"]) == 429
        assert attempt(live.url, live.passwords["alice"]) == 429
    finally:
        other.terminate()
        other.wait(30)


def test_the_case_page_names_the_analyst_rules_that_fired(live, mk):
    """A scorer's ``rules_fired`` travels in the alert and is listed on the case page (escaped as text)."""
    alert = {**mk.alert(), "rules_fired": ["atm-abroad-burst", "<b>odd</b>"]}
    made = mk.ingest(live, "/api/ingest/fraud-alerts", alert)
    assert made.status_code in (200, 201), made.text
    page = mk.login(live, "alice").get(f"/cases/{made.json()['case_id']}")
    assert page.status_code == 200
    fired = page.text.split('id="rules-fired"', 1)[1].split("</p>", 1)[0]
    assert "atm-abroad-burst" in fired and "&lt;b&gt;odd&lt;/b&gt;" in fired
    plain = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert()).json()
    assert 'id="rules-fired"' not in mk.login(live, "alice").get(f"/cases/{plain['case_id']}").text
