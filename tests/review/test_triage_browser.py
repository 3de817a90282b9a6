"""Triage at speed, in real Chromium (Playwright, Debian's Chromium) against the real app, on SQLite and
on PostgreSQL: a fraud analyst clears 20 cases with the keyboard alone; a QC engineer's "next" never
gives a fraud case; a declined alert shows in the decline colour on the model's own thresholds; a
supervisor bulk-closes one merchant's cases with one journal entry each.  Plus, on SQLite, the layout at
1366 x 900 (15+ queue rows, decision panel above the fold) with screenshots in test-artifacts/review/."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from npusuite.review.models import Case, JournalEntry

pytestmark = pytest.mark.browser

THRESHOLDS = {"review": 0.04, "decline": 0.08}
VIEWPORT = {"width": 1366, "height": 900}
#: --bad-bg / --warn-bg of review.css, as the browser computes them.
DECLINE_BG, REVIEW_BG = "rgb(254, 226, 226)", "rgb(254, 243, 199)"


def _login_by_keyboard(page, live, user: str) -> None:
    page.goto(f"{live.url}/login")
    # The user name field has autofocus; Chromium applies it at a rendering step that may come after "load"
    # on a loaded machine, so wait for the focus rather than type into the page body.
    page.wait_for_function("document.activeElement && document.activeElement.name === 'username'")
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(live.passwords[user])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/queue"), f"login as {user} landed on {page.url}: {page.inner_text('main')[:300]}"


def _key(page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def test_fraud_analyst_clears_a_queue_of_20_cases_with_only_the_keyboard(browser, live_any, mk):
    ids = [mk.ingest(live_any, "/api/ingest/fraud-alerts",
                     mk.alert(score=0.05 + i / 100, decision="review" if i < 4 else "decline",
                              thresholds=THRESHOLDS)).json()["case_id"] for i in range(20)]
    qc = mk.ingest(live_any, "/api/ingest/inspections", mk.inspection(score=0.99)).json()["case_id"]
    page = browser.new_page(viewport=VIEWPORT)
    _login_by_keyboard(page, live_any, "fay")
    _key(page, "n")
    for i in range(20):
        assert page.url.rsplit("/", 1)[1].isdigit()
        page.keyboard.press("/")
        page.keyboard.type(f"checked by phone, call {i}")
        page.keyboard.press("Escape")
        _key(page, "c" if i % 2 else "l")
        assert "closed" in page.inner_text(".headstats")
        _key(page, "j")
    assert "/queue" in page.url and "No unassigned case is waiting" in page.inner_text(".alert.info")
    page.close()
    with live_any.db.sessions() as s:
        rows = s.execute(select(Case.id, Case.status, Case.outcome, Case.assignee_id).where(Case.id.in_(ids))).all()
        assert {r.status for r in rows} == {"closed"} and len(rows) == 20
        assert sorted(r.outcome for r in rows) == ["confirmed_fraud"] * 10 + ["legitimate"] * 10
        assert s.get(Case, qc).status == "open"
        comments = s.scalars(select(JournalEntry.comment).where(JournalEntry.field == "outcome",
                                                                JournalEntry.actor == "fay")).all()
        assert len(comments) == 20 and all(c.startswith("checked by phone") for c in comments)


def test_qc_engineer_never_receives_a_fraud_case_from_next(browser, live_any, mk):
    fraud = [mk.ingest(live_any, "/api/ingest/fraud-alerts", mk.alert(score=0.99, thresholds=THRESHOLDS))
             .json()["case_id"] for _ in range(4)]
    qc = [mk.ingest(live_any, "/api/ingest/inspections", mk.inspection(score=0.3 + i / 10)).json()["case_id"]
          for i in range(2)]
    page = browser.new_page(viewport=VIEWPORT)
    _login_by_keyboard(page, live_any, "quinn")
    assert page.locator("table.queue tbody tr[data-case]").count() == 2  # QC's queue only
    taken = []
    for _ in range(2):
        _key(page, "n")
        taken.append(int(page.url.rsplit("/", 1)[1]))
        assert page.inner_text("h1").startswith("Q-")
        page.select_option("select[name=label_type]", "crack")
        page.keyboard.press("/")
        page.keyboard.type("crack at the rim")
        page.keyboard.press("Escape")
        _key(page, "c")
        page.goto(f"{live_any.url}/queue")
    _key(page, "n")
    assert "No unassigned case is waiting" in page.inner_text(".alert.info")
    assert sorted(taken) == sorted(qc)
    resp = page.goto(f"{live_any.url}/cases/{fraud[0]}")
    assert resp.status == 403 and "fraud team" in page.inner_text("main")
    page.close()
    with live_any.db.sessions() as s:
        assert {s.get(Case, i).assignee_id for i in fraud} == {None}


def test_a_declined_alert_is_shown_in_the_decline_colour(browser, live_any, mk):
    declined = mk.ingest(live_any, "/api/ingest/fraud-alerts",
                         mk.alert(score=0.166, decision="decline", thresholds=THRESHOLDS)).json()["case_id"]
    review = mk.ingest(live_any, "/api/ingest/fraud-alerts",
                       mk.alert(score=0.05, decision="review", thresholds=THRESHOLDS)).json()["case_id"]
    older = mk.ingest(live_any, "/api/ingest/fraud-alerts",
                      mk.alert(score=0.9, decision="review")).json()["case_id"]  # no thresholds: older scorer
    page = browser.new_page(viewport=VIEWPORT)
    _login_by_keyboard(page, live_any, "alice")

    def badge(case_id):
        return page.locator(f"tr[data-case='{case_id}'] .score")

    assert badge(declined).get_attribute("data-band") == "decline"
    assert badge(declined).evaluate("e => getComputedStyle(e).backgroundColor") == DECLINE_BG
    assert badge(declined).inner_text() == "0.166" and "/ 0.080" in page.inner_text(f"tr[data-case='{declined}']")
    assert badge(review).get_attribute("data-band") == "review"
    assert badge(older).get_attribute("data-band") == "review"  # 0.9, but the scorer said review
    assert badge(older).evaluate("e => getComputedStyle(e).backgroundColor") == REVIEW_BG
    page.goto(f"{live_any.url}/cases/{declined}")
    scale = page.inner_text("#risk-scale")
    assert "decline" in scale and "decline ≥ 0.080" in scale and "review ≥ 0.040" in scale
    page.goto(f"{live_any.url}/cases/{older}")
    assert "no thresholds in this alert (older scorer)" in page.inner_text("#risk-scale")
    page.close()


def test_supervisor_bulk_closes_one_merchants_cases_one_journal_entry_each(browser, live_any, mk):
    ids = [mk.ingest(live_any, "/api/ingest/fraud-alerts",
                     mk.alert(score=0.09, merchant="m-cardtest", thresholds=THRESHOLDS,
                              reasons=["card testing: 6 small online payments in 10 min"],
                              reason_codes=["card_testing"])).json()["case_id"] for _ in range(40)]
    others = [mk.ingest(live_any, "/api/ingest/fraud-alerts", mk.alert(merchant="m-other")).json()["case_id"]
              for _ in range(3)]
    page = browser.new_page(viewport=VIEWPORT)
    _login_by_keyboard(page, live_any, "sue")
    page.goto(f"{live_any.url}/cases/{ids[0]}")
    with page.expect_navigation():
        page.click("tr[data-entity=merchant] a[href*='linked=']")  # the merchant's 39 other open cases
    assert page.locator("table.queue tbody tr[data-case]").count() == 40
    page.check("[data-select-all]")
    page.select_option("#bulk-form select[name=action]", "confirm_fraud")
    page.select_option("#bulk-form select[name=label_type]", "card_testing")
    page.fill("#bulk-form input[name=comment]", "card-testing run at m-cardtest, merchant confirmed")
    with page.expect_navigation():
        page.click("#bulk-close")
    assert "Closed 40 case(s)." in page.inner_text(".alert.info")
    page.close()
    with live_any.db.sessions() as s:
        for case_id in ids:
            entries = s.scalars(select(JournalEntry).where(JournalEntry.case_id == case_id,
                                                           JournalEntry.actor == "sue")).all()
            assert len(entries) == 1 and entries[0].new_value == "confirmed_fraud"
            assert (s.get(Case, case_id).status, s.get(Case, case_id).typology) == ("closed", "card_testing")
        assert {s.get(Case, i).status for i in others} == {"open"}


def test_layout_at_1366x900_and_screenshots(browser, live, mk, artifacts):
    for i in range(24):
        mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(
            score=0.02 + i * 0.006, decision="decline" if i > 12 else "review", thresholds=THRESHOLDS,
            merchant=f"m-{i % 4}", reasons=["amount 14x account median (912.00 EUR)", "new device and new IP network"],
            reason_codes=["amount_spike", "new_device"],
            features={"device_age_log": 4.852, "amount_to_median_log": 2.64, "cnt_24h": 1.0986, "new_device": 1.0,
                      "hour_unusual": 4.2, "geo_km_log": 0.0}))
    for i in range(3):
        mk.ingest(live, "/api/ingest/inspections", mk.inspection(score=0.5 + i / 5))
    page = browser.new_page(viewport=VIEWPORT)
    _login_by_keyboard(page, live, "sue")
    rows = page.locator("table.queue tbody tr[data-case]")
    visible = sum(1 for i in range(rows.count()) if rows.nth(i).bounding_box()["y"] + rows.nth(i).bounding_box()[
        "height"] <= VIEWPORT["height"])
    assert visible >= 15
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("tr.selected").count() == 1
    page.screenshot(path=str(artifacts / "queue-1366x900.png"))
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible() and "escalate" in page.inner_text("#shortcuts")
    page.screenshot(path=str(artifacts / "shortcuts-1366x900.png"))
    page.keyboard.press("Escape")
    _key(page, "o")
    _key(page, "t")
    panel = page.locator("#decide-form")
    box = panel.bounding_box()
    assert box["y"] + box["height"] <= VIEWPORT["height"]
    main = page.inner_text("main")
    assert "device first seen 2 min ago" in main and "device_age_log 4.852" not in main
    assert "amount_spike" in main and "amount 14x account median" in main
    assert page.inner_text("h1").startswith("F-")
    page.screenshot(path=str(artifacts / "fraud-case-1366x900.png"))
    page.close()
