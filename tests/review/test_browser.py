"""The analyst's path in a real browser: Debian's Chromium driven by Playwright.

Log in, open the queue, take the next case, confirm fraud with a comment, and
see the decision in the journal.  Screenshots go to ``test-artifacts/review/``
(git-ignored) for people to look at.  The ``browser`` fixture is in conftest.py.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

def test_analyst_confirms_fraud_and_sees_it_in_the_journal(browser, live, mk, artifacts):
    artifacts.mkdir(parents=True, exist_ok=True)
    top = mk.alert("tx-browser-1", score=0.97, decision="decline", reasons=["amount_spike", "new_device", "geo_jump"],
                   rationale="Three card-not-present charges within four minutes from a device never seen on "
                             "this account, the last one 20x the account's median amount.")
    mk.ingest(live, "/api/ingest/fraud-alerts", top)
    for i in range(4):
        mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert(score=0.55 + i / 20, decision="review",
                                                               reasons=["velocity"], model="fraud-mlp@4"))
    mk.ingest(live, "/api/ingest/inspections", mk.inspection("line1-0042"))

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live.url}/queue")
    assert "/login" in page.url  # no session: the queue sends us to the login page
    page.screenshot(path=str(artifacts / "login.png"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", live.passwords["alice"])
    page.click("button[type=submit]")
    page.wait_for_url("**/queue")
    assert page.locator("table.queue tbody tr").count() == 6
    page.screenshot(path=str(artifacts / "queue.png"), full_page=True)

    page.select_option(".next-form select[name=team]", "fraud")
    page.click("#next-case")
    page.wait_for_url("**/cases/*")
    assert "tx-browser-1" in page.inner_text("main")  # the highest-priority case
    assert "Three card-not-present charges" in page.inner_text(".rationale")
    page.fill("textarea[name=comment]", "Customer confirmed by phone they did not make these purchases.")
    page.select_option("select[name=label_type]", "account_takeover")
    with page.expect_navigation():
        page.click("button[value=confirm_fraud]")
    page.wait_for_selector("table.journal >> text=confirmed_fraud")

    journal = page.inner_text("table.journal")
    assert "confirmed_fraud" in journal and "alice" in journal
    assert "Customer confirmed by phone" in journal
    assert "closed" in page.inner_text(".headstats")
    page.screenshot(path=str(artifacts / "fraud-case-decided.png"), full_page=True)

    page.goto(f"{live.url}/journal")
    assert "confirmed_fraud" in page.inner_text("table.journal")
    page.screenshot(path=str(artifacts / "journal.png"), full_page=True)
    page.close()


def test_inspection_case_and_dashboard_render(browser, live, mk, artifacts):
    artifacts.mkdir(parents=True, exist_ok=True)
    case_id = mk.ingest(live, "/api/ingest/inspections", mk.inspection("line1-0007")).json()["case_id"]
    mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert())
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live.url}/login")
    page.fill("input[name=username]", "sue")
    page.fill("input[name=password]", live.passwords["sue"])
    page.click("button[type=submit]")
    page.wait_for_url("**/queue")
    page.goto(f"{live.url}/cases/{case_id}")
    page.click("text=Take case")
    page.wait_for_selector("#decide-form")
    images = page.locator(".viewer img")
    assert images.count() == 2
    assert all(images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(2))
    assert page.locator(".viewer .box").count() == 1
    page.screenshot(path=str(artifacts / "inspection-case.png"), full_page=True)
    page.goto(f"{live.url}/dashboard")
    assert page.locator("svg.chart rect").count() > 0
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    page.close()
