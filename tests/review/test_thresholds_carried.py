"""The model card's thresholds travel with the alert: the fraud scorer's results carry its config's
review/decline thresholds, the processor puts them into the ``fraud-alerts`` record, and the review
app reads them back (alerts without them, from older scorers, stay valid)."""

from __future__ import annotations

import json

import numpy as np

from npusuite.fraud.features import FEATURE_NAMES
from npusuite.fraud.schema import parse_transaction
from npusuite.fraud.scorer import ScorerConfig, TieredScorer
from npusuite.fraud.service.account_store import AccountStore
from npusuite.fraud.service.config import Topics
from npusuite.fraud.service.processor import InRecord, ScoreResult, process_batch
from npusuite.platform.contracts.alert import parse_fraud_alert

CARD = {"thresholds": {"review": 0.04, "decline": 0.08, "grey_low": 0.5, "grey_high": 0.5},
        "features": list(FEATURE_NAMES)}


class FixedFast:
    """A fast model that scores every transaction 0.166 (a decline for this card)."""

    ref = "fixed@1"
    card = CARD

    def contributions(self, x):
        return np.full(len(x), 0.166), {}


def _tx(tid: str) -> bytes:
    return json.dumps({"transaction_id": tid, "timestamp": "2026-03-02T00:01:16Z", "account_id": "A1",
                       "card_id": "C1", "amount": 12.5, "currency": "EUR", "merchant_id": "M1",
                       "merchant_category": "5411", "channel": "ecommerce", "country": "DE", "lat": None, "lon": None,
                       "device_id": "D1", "ip": None}).encode()


def test_the_tiered_scorer_results_carry_the_configs_thresholds():
    scorer = TieredScorer(FixedFast())
    (result,) = scorer.score_batch([(parse_transaction(_tx("t1")), None)])
    assert result.fields["decision"] == "decline"
    assert result.thresholds == {"review": 0.04, "decline": 0.08}
    override = TieredScorer(FixedFast(), config=ScorerConfig.from_card(CARD, decline=0.5))
    (result,) = override.score_batch([(parse_transaction(_tx("t2")), None)])
    assert result.thresholds == {"review": 0.04, "decline": 0.5} and result.fields["decision"] == "review"


class Scorer:
    def __init__(self, thresholds):
        self.thresholds = thresholds

    def score_batch(self, requests):
        return [ScoreResult({"transaction_id": r.transaction.transaction_id, "score": 0.166, "decision": "decline",
                             "reasons": [], "reason_codes": [], "model": "fixed@1", "latency_ms": 0.0}, 0, {},
                            thresholds=self.thresholds) for r in requests]

    def encode_state(self, state):
        return b"0"

    def restore_state(self, snapshot, transactions):
        return 0


def _alert_of(thresholds):
    store = AccountStore(ring_size=20)
    store.set_partition(0, {})
    out = process_batch([InRecord(0, 0, b"A1", _tx("t1"), 1_700_000_000_000)], store, Scorer(thresholds), Topics(),
                        "g-account-state")
    (alert,) = [r for r in out.records if r.topic == Topics().alerts]
    return parse_fraud_alert(alert.value)


def test_the_processor_puts_them_into_the_alert_and_older_results_leave_it_null():
    carried = _alert_of({"review": 0.04, "decline": 0.08})
    assert (carried.thresholds.review, carried.thresholds.decline) == (0.04, 0.08)
    assert _alert_of(None).thresholds is None
