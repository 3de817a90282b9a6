"""Hostile and extreme input through the fraud path: features stay finite, reason phrases fit the
review app's ingest contract, offline ``fraud score`` finishes, and (a hypothesis property) any bytes
or any extreme-but-valid transaction through ``parse -> features -> score`` give a finite score or a
dead-letter reason, never an exception.

Regressions from the hostile-input issue: 2c (amount 1e10 then 1e-320 on one account raised
``math domain error``), 7 (the reasons of an ``amount: 1e308`` alert ran to 453 characters and the
review ingest refused the alert).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusuite.fraud.fast_model import REASON_GROUPS
from npusuite.fraud.features import AccountState, advance
from npusuite.fraud.reasons import phrase
from npusuite.fraud.schema import parse_transaction
from npusuite.fraud.service import messages
from npusuite.review.ingest import MAX_REASON_CHARS, parse_fraud_alert

EXTREME_AMOUNTS = (5e-324, 1e-320, 1e-9, 0.004, 1e10, 1e15, 1e16, 1e308, 1.7976931348623157e308)
CHANNELS = ("card_present", "ecommerce", "atm", "transfer")


def tx(tid: str, amount: float = 12.5, account: str = "A1", **extra) -> dict:
    out = {"transaction_id": tid, "timestamp": "2026-03-02T00:01:16Z", "account_id": account, "card_id": "C1",
           "amount": amount, "currency": "EUR", "merchant_id": "M1", "merchant_category": "5411",
           "channel": "ecommerce", "country": "DE", "lat": 52.5, "lon": 13.4, "device_id": "D1", "ip": "10.1.2.3"}
    out.update(extra)
    return out


def finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def test_issue_2c_a_tiny_amount_after_a_huge_one_gives_finite_features():
    state = AccountState()
    for i, amount in enumerate((1e10, 1e-320)):
        features = advance(state, parse_transaction(tx(f"T{i}", amount)))
        assert finite(features.values), features.as_dict()


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_extreme_amount_in_any_order_and_far_timestamps_give_finite_features(channel):
    state = AccountState()
    stamps = ["0001-01-01T00:00:00Z", "2026-03-02T00:01:16Z", "2026-03-02T00:01:16Z", "9999-12-31T23:59:59Z",
              "1970-01-01T00:00:00Z"]
    n = 0
    for amount in (*EXTREME_AMOUNTS, *reversed(EXTREME_AMOUNTS), 1e308, 1e308, 5e-324, 5e-324):
        for stamp in stamps:
            n += 1
            features = advance(state, parse_transaction(tx(f"T{n}", amount, channel=channel, timestamp=stamp,
                                                           lat=-90.0 if n % 2 else 90.0, lon=180.0)))
            assert finite(features.values), (amount, stamp, features.as_dict())
    assert AccountState.from_bytes(state.to_bytes()) == state


def test_a_state_written_before_amounts_were_clamped_still_gives_finite_features():
    """States in a changelog may hold amounts the clamp now keeps out (1e308 entered them before)."""
    state = AccountState(n=3, max_amount=1e308, max_transfer=1e308, recent_amounts=[1e308, 1e308, 1e308])
    for amount in (1e-320, 12.5, 1e308):
        features = advance(state, parse_transaction(tx(f"T{amount}", amount, channel="transfer")))
        assert finite(features.values), features.as_dict()


def extreme_history(amount: float, channel: str) -> list[tuple[dict, object]]:
    """(transaction, features) of a short history of one account ending in ``amount`` on ``channel``."""
    state, out = AccountState(), []
    base = datetime(2026, 3, 2, tzinfo=UTC)
    history = [tx("h0", 20.0, channel="atm"), tx("h1", 3.0, channel="transfer", lat=-33.9, lon=151.2),
               tx("h2", 1e-320, channel=channel), tx("h3", amount, channel=channel, merchant_id="M9", lat=40.7,
                                                       lon=-74.0, device_id="D9", ip="2001:db8::1", country="US")]
    for i, t in enumerate(history):
        t["timestamp"] = (base + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        parsed = parse_transaction(t)
        out.append((t, parsed, advance(state, parsed)))
    return out


@pytest.mark.parametrize("amount", EXTREME_AMOUNTS)
@pytest.mark.parametrize("channel", CHANNELS)
def test_issue_7_every_reason_phrase_for_extreme_amounts_fits_the_review_ingest(amount, channel):
    *history, (raw, last, features) = extreme_history(amount, channel)
    phrases = [phrase(group, last, features) for group in REASON_GROUPS]
    assert all(0 < len(p) <= MAX_REASON_CHARS for p in phrases), max(phrases, key=len)
    for start in range(0, len(phrases), 3):  # alerts carry at most 3 reasons; every phrase rides on one
        score = {"transaction_id": last.transaction_id, "score": 0.99, "decision": "decline",
                 "reasons": phrases[start:start + 3], "model": "fraud-fast@1", "latency_ms": 1.0}
        alert = messages.alert_value(score, last, [json.dumps(t).encode() for t, _, _ in history],
                                     features.as_dict(), None)
        parsed = parse_fraud_alert(alert)  # the review app's own parser: this alert becomes a case
        assert parsed.reasons == phrases[start:start + 3]


def test_offline_fraud_score_finishes_on_extreme_amounts(capsys, tmp_path, fraud_model):
    from npusuite.platform.cli import main

    model_dir, _ = fraud_model
    lines = [tx(f"T{i}", amount, timestamp=f"2026-03-02T00:{i:02d}:00Z") for i, amount in
             enumerate((1e10, 1e-320, 1e308, 1e308, 5e-324, 12.5))]
    data, out = tmp_path / "tx.jsonl", tmp_path / "scores.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(SystemExit) as exit_info:
        main(["fraud", "score", "--model", str(model_dir), "--input", str(data), "--out", str(out), "--no-llm"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    scores = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["transaction_id"] for s in scores] == [line["transaction_id"] for line in lines]
    assert all(0.0 <= s["score"] <= 1.0 and all(len(r) <= MAX_REASON_CHARS for r in s["reasons"]) for s in scores)


# -- the property: parse -> features -> score never raises --------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=140)
_ID = st.one_of(st.text(st.characters(codec="utf-8"), min_size=1, max_size=24),
                st.text(st.characters(codec="utf-8"), min_size=1, max_size=140))
_WHEN = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
_AMOUNT = st.one_of(st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False),
                    st.sampled_from(EXTREME_AMOUNTS))


@st.composite
def transaction_bytes(draw) -> tuple[bytes, bytes]:
    """(key, value): a transaction with extreme, long or odd fields, keyed by its account (mostly)."""
    account = draw(st.one_of(st.sampled_from(["A1", "A2", "\u0000\u202e\U0001f4a5"]), _ID))
    fields = {
        "transaction_id": draw(_ID), "timestamp": draw(_WHEN).isoformat(), "account_id": account,
        "card_id": draw(_ID), "amount": draw(_AMOUNT), "currency": draw(st.sampled_from(["EUR", "USD", "JPY"])),
        "merchant_id": draw(_ID), "merchant_category": draw(st.sampled_from(["5411", "6011", "4829"])),
        "channel": draw(st.sampled_from(CHANNELS)),
        "country": draw(st.sampled_from(["DE", "US"])),
        "lat": draw(st.one_of(st.none(), st.floats(-90, 90))), "lon": draw(st.one_of(st.none(), st.floats(-180, 180))),
        "device_id": draw(st.one_of(st.none(), _ID)),
        "ip": draw(st.one_of(st.none(), st.ip_addresses().map(str), _TEXT)),
    }
    if draw(st.integers(0, 4)) == 0:  # now and then, a field of the wrong type (or missing)
        name = draw(st.sampled_from(sorted(fields)))
        fields[name] = draw(st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=3), _TEXT))
        if draw(st.booleans()):
            del fields[name]
    key = account.encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=8))
    return key, json.dumps(fields).encode()


_JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
                     max_leaves=30)
_MESSAGE = st.one_of(
    transaction_bytes(), transaction_bytes(), transaction_bytes(),
    st.tuples(st.binary(max_size=8), st.binary(max_size=2000)),
    st.tuples(st.just(b"A1"), _JSON.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.just(b"A1"), st.integers(1, 70_000).map(lambda n: b"[" * n + b"]" * n)),
)


@pytest.fixture(scope="module")
def live_scorer(fraud_model):
    """The live service's scorer on the trained fast model (no LLM: the grey band falls back)."""
    from npusuite.fraud.service.adapters import FraudFastAdapter
    from npusuite.fraud.service.scoring import LiveScorer
    from npusuite.platform.engine import ModelEngine

    scorer = LiveScorer(ModelEngine.open("fraud-fast", root=fraud_model[1], follow_alias=True, device="cpu",
                                         adapter=FraudFastAdapter()))
    yield scorer
    scorer.close()


def test_any_message_gives_a_finite_score_or_a_dead_letter_reason(live_scorer):
    from npusuite.fraud.service.account_store import AccountStore
    from npusuite.fraud.service.config import Topics
    from npusuite.fraud.service.processor import InRecord, process_batch

    topics = Topics()
    store = AccountStore()
    store.set_partition(0, {})  # shared by every example: extreme transactions pile up in the same states
    seen = {"examples": 0, "dead": 0, "scored": 0}

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages_=st.lists(_MESSAGE, min_size=1, max_size=4))
    def check(messages_):
        records = [InRecord(0, i, key, value, 1_700_000_000_000) for i, (key, value) in enumerate(messages_)]
        outcome = process_batch(records, store, live_scorer, topics, "g-account-state")
        dead = [r for r in outcome.records if r.topic == topics.dlq]
        scores = [json.loads(r.value) for r in outcome.records if r.topic == topics.scores]
        assert len(dead) + len(scores) == len(records)
        assert all(dict(r.headers)[messages.DLQ_REASON_HEADER] for r in dead)
        for s in scores:
            assert 0.0 <= s["score"] <= 1.0 and all(0 < len(r) <= MAX_REASON_CHARS for r in s["reasons"])
        for alert in (r.value for r in outcome.records if r.topic == topics.alerts):
            assert finite(parse_fraud_alert(alert).features.values())
        seen["examples"] += 1
        seen["dead"] += len(dead)
        seen["scored"] += len(scores)

    check()
    print(f"hypothesis: {seen['examples']} batches, {seen['scored']} messages scored, {seen['dead']} dead-lettered")
    assert seen["scored"] > 50 and seen["dead"] > 50  # both sides of the property were exercised
