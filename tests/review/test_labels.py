"""One label vocabulary in the review app: forms offer it, decisions are checked against it, reasons are
stored and filtered by code (issue 13: the app offered stolen_card, merchant_collusion, money_mule and
missing_part, classes no model learned)."""

from __future__ import annotations

import re

import pytest

from npusuite.fraud.fast_model import REASON_GROUPS
from npusuite.fraud.features import StreamFeaturizer
from npusuite.fraud.generator import GeneratorConfig, generate
from npusuite.fraud.reasons import reason
from npusuite.fraud.schema import parse_transaction
from npusuite.platform.contracts.labels import DefectKind, FraudTypology, ReasonCode
from npusuite.review.reason_phrases import code_of_phrase, codes_for


def _options(html: str) -> list[str]:
    select = html.split('name="label_type"', 1)[1].split("</select>", 1)[0]
    return [v for v in re.findall(r'<option value="([^"]*)"', select) if v]


def test_forms_offer_exactly_the_vocabulary(live, mk):
    fraud = mk.ingest(live, "/api/ingest/fraud-alerts", mk.alert()).json()["case_id"]
    insp = mk.ingest(live, "/api/ingest/inspections", mk.inspection()).json()["case_id"]
    alice = mk.login(live, "alice")
    for case_id in (fraud, insp):
        assert alice.post(f"/api/cases/{case_id}/take").status_code == 200
    fraud_page, insp_page = alice.get(f"/cases/{fraud}").text, alice.get(f"/cases/{insp}").text
    assert _options(fraud_page) == [t.value for t in FraudTypology]
    assert _options(insp_page) == [d.value for d in DefectKind]
    assert "Account takeover" in fraud_page and "Missing part" in insp_page
    for gone in ("stolen_card", "merchant_collusion", "money_mule", "missing_part"):
        assert gone not in fraud_page + insp_page


@pytest.mark.parametrize(("kind", "action", "bad"), [
    ("fraud", "confirm_fraud", "stolen_card"), ("fraud", "confirm_fraud", "scratch"),
    ("inspection", "confirm_defect", "missing_part"), ("inspection", "confirm_defect", "card_testing"),
    ("inspection", "confirm_defect", "x" * 5000),
])
def test_a_type_outside_the_vocabulary_is_refused_and_changes_nothing(live, mk, kind, action, bad):
    path, body = (("/api/ingest/fraud-alerts", mk.alert()) if kind == "fraud"
                  else ("/api/ingest/inspections", mk.inspection()))
    case_id = mk.ingest(live, path, body).json()["case_id"]
    alice = mk.login(live, "alice")
    alice.post(f"/api/cases/{case_id}/take")
    resp = alice.post(f"/api/cases/{case_id}/decide", json={"action": action, "comment": "seen", "type": bad})
    assert resp.status_code == 400
    reason = resp.json()["error"]
    assert ("unknown" in reason and "use one of" in reason) or "too long" in reason
    assert len(reason) < 600
    after = alice.get(f"/api/cases/{case_id}").json()
    assert (after["status"], after["outcome"], after["typology"]) == ("in_review", None, None)
    good = "cloned_card" if kind == "fraud" else "missing"
    done = alice.post(f"/api/cases/{case_id}/decide", json={"action": action, "comment": "seen", "type": good})
    assert done.status_code == 200 and done.json()["typology"] == good


def test_reasons_are_stored_and_filtered_by_code(live, mk):
    coded = mk.alert(reasons=["amount 14x account median (912.00 EUR)", "new device and new IP network"],
                     reason_codes=["amount_spike", "new_device"])
    older = mk.alert(reasons=["amount 3x account median (80.00 EUR)", "something new"])  # no codes: recognised
    unknown = mk.alert(reasons=["first time at this merchant"], reason_codes=["from_a_newer_scorer"])
    ids = [mk.ingest(live, "/api/ingest/fraud-alerts", a).json()["case_id"] for a in (coded, older, unknown)]
    alice = mk.login(live, "alice")
    stored = [alice.get(f"/api/cases/{i}").json()["reason_codes"] for i in ids]
    assert stored == [["amount_spike", "new_device"], ["amount_spike", "other"], ["new_merchant"]]
    spikes = alice.get("/api/cases", params={"reason": "amount_spike"}).json()["cases"]
    assert sorted(c["id"] for c in spikes) == ids[:2]
    refused = alice.get("/api/cases", params={"reason": "amount 14x account median (912.00 EUR)"})
    assert refused.status_code == 400 and "unknown reason code" in refused.json()["error"]
    queue = alice.get("/queue", params={"reason": "amount_spike"}).text
    assert f'<option value="amount_spike" selected>{ReasonCode.AMOUNT_SPIKE.label}</option>' in queue.replace(
        "&#39;", "'")
    assert alice.get("/queue", params={"reason": "<script>"}).status_code == 200  # a bad link shows the queue


def test_codes_from_a_mismatched_list_are_recognised_from_the_phrases():
    assert codes_for(["first payment to this payee", "no risk indicators"], ["new_payee"]) == ["new_payee", "no_risk"]


def test_every_phrase_the_scorer_writes_is_recognised_as_its_own_code():
    """The migration and older alerts rely on recognising phrases: every group, on a real stream."""
    txs, _ = generate(GeneratorConfig(accounts=60, days=6, seed=2, fraud_rate=0.05), progress=False)
    featurizer = StreamFeaturizer()
    seen: set[ReasonCode] = set()
    for raw in txs:
        tx = parse_transaction(raw)
        f = featurizer.advance(tx)
        for group in REASON_GROUPS:
            code, text = reason(group, tx, f)
            assert code_of_phrase(text) == code, (group, text)
            seen.add(code)
    assert len(seen) >= 15, sorted(seen)
