"""The generator: deterministic, schema-valid, realistic typology shapes, fraud rate as asked."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from npusuite.fraud.generator import GeneratorConfig, generate, write
from npusuite.fraud.schema import parse_transaction
from npusuite.fraud.world import haversine_km
from npusuite.platform.contracts.labels import GENERATED_TYPOLOGIES, FraudTypology


@pytest.fixture(scope="module")
def stream():
    txs, labels = generate(GeneratorConfig(accounts=300, days=20, seed=5), progress=False)
    return txs, labels


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = GeneratorConfig(accounts=40, days=5, seed=3, fraud_rate=0.01)
    write(tmp_path / "a", cfg, progress=False)
    write(tmp_path / "b", cfg, progress=False)
    write(tmp_path / "c", GeneratorConfig(accounts=40, days=5, seed=4, fraud_rate=0.01), progress=False)
    for name in ("transactions.jsonl", "labels.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "transactions.jsonl").read_bytes() != (tmp_path / "c" / "transactions.jsonl").read_bytes()


def test_every_line_meets_the_contract_and_time_order(stream):
    txs, labels = stream
    parsed = [parse_transaction(json.dumps(t)) for t in txs]
    assert [p.timestamp for p in parsed] == sorted(p.timestamp for p in parsed)
    assert len({p.transaction_id for p in parsed}) == len(parsed)
    assert [lab["transaction_id"] for lab in labels] == [t["transaction_id"] for t in txs]
    assert {t["channel"] for t in txs} == {"card_present", "ecommerce", "atm", "transfer"}


def test_fraud_rate_and_typologies(stream):
    txs, labels = stream
    rate = sum(lab["is_fraud"] for lab in labels) / len(labels)
    assert 0.002 < rate < 0.006, rate
    kinds = {lab["fraud_type"] for lab in labels if lab["is_fraud"]}
    assert kinds == {"card_testing", "account_takeover", "cloned_card", "atm_cashout", "merchant_bust_out",
                     "dormant_bust_out", "synthetic_identity", "app_scam"}
    # One vocabulary: what the generator writes is what the review app offers and training accepts.
    assert kinds == {t.value for t in GENERATED_TYPOLOGIES} == {t.value for t in FraudTypology} - {"other"}
    assert all(type(lab["fraud_type"]) is str for lab in labels if lab["is_fraud"])
    assert all(lab["fraud_type"] is None for lab in labels if not lab["is_fraud"])
    higher = generate(GeneratorConfig(accounts=300, days=20, seed=5, fraud_rate=0.02), progress=False)[1]
    assert sum(lab["is_fraud"] for lab in higher) / len(higher) > 3 * rate


def _episodes(stream, kind):
    txs, labels = stream
    by_account = defaultdict(list)
    for t, lab in zip(txs, labels, strict=True):
        if lab["fraud_type"] == kind:
            by_account[t["account_id"]].append(t)
    return txs, by_account


def test_card_testing_is_a_burst_of_small_online_payments(stream):
    _, episodes = _episodes(stream, "card_testing")
    assert episodes
    for events in episodes.values():
        small = [e for e in events if e["amount"] <= 5.0]
        assert len(small) >= 5 and all(e["channel"] == "ecommerce" for e in small)
        assert len({e["device_id"] for e in events}) == 1


def test_cloned_card_is_impossible_travel(stream):
    txs, episodes = _episodes(stream, "cloned_card")
    assert episodes
    from datetime import datetime

    def t(e):
        return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()

    impossible = 0
    for account, events in episodes.items():
        first = events[0]
        before = [e for e in txs if e["account_id"] == account and e["lat"] is not None and t(e) < t(first)]
        if before:
            km = haversine_km(before[-1]["lat"], before[-1]["lon"], first["lat"], first["lon"])
            impossible += km / max((t(first) - t(before[-1])) / 3600, 1 / 60) > 900
    assert impossible >= 0.8 * len(episodes)


def test_genuine_oddities_exist(stream):
    """Not every outlier is fraud: genuine foreign card-present payments and big purchases."""
    txs, labels = stream
    genuine_abroad = [t for t, lab in zip(txs, labels, strict=True) if not lab["is_fraud"] and t["country"] != "GB"]
    assert len(genuine_abroad) > 50
    big = [t for t, lab in zip(txs, labels, strict=True) if not lab["is_fraud"] and t["amount"] > 500]
    assert len(big) > 20


def _t(e) -> float:
    from datetime import datetime

    return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()


def test_dormant_bust_out_follows_a_quiet_spell_on_known_devices(stream):
    txs, episodes = _episodes(stream, "dormant_bust_out")
    assert episodes
    for account, events in episodes.items():
        before = [e for e in txs if e["account_id"] == account and _t(e) < _t(events[0])]
        after = [e for e in txs if e["account_id"] == account and _t(e) > _t(events[-1])]
        assert not after  # the customer is never heard from again
        if before:
            assert _t(events[0]) - _t(before[-1]) >= 86400  # quiet for days before the spree
        devices = {e["device_id"] for e in events if e["device_id"]}
        known = {e["device_id"] for e in before if e["device_id"]}
        assert not devices - known - {None} or not known  # their own phone, not a fraudster's
        assert all(e["country"] == "GB" for e in events)


def test_synthetic_identity_builds_up_genuine_then_busts_out_on_one_device(stream):
    txs, labels = stream
    _, episodes = _episodes(stream, "synthetic_identity")
    assert episodes
    for account, events in episodes.items():
        history = [(t, lab) for t, lab in zip(txs, labels, strict=True) if t["account_id"] == account]
        build_up = [t for t, lab in history if not lab["is_fraud"]]
        assert build_up and all(_t(t) < _t(events[0]) for t in build_up)  # genuine-labelled, then the loss
        assert len({e["device_id"] for e in events if e["device_id"]}) <= 1
    # A young account is not fraud in itself: genuine customers join mid-stream too.
    first_seen: dict[str, float] = {}
    for t in txs:
        first_seen.setdefault(t["account_id"], _t(t))
    start = min(first_seen.values())
    joiners = {a for a, t0 in first_seen.items() if t0 - start > 2 * 86400} - set(episodes)
    assert joiners


def test_app_scam_is_escalating_transfers_to_one_new_payee(stream):
    txs, episodes = _episodes(stream, "app_scam")
    assert episodes
    for account, events in episodes.items():
        assert {e["channel"] for e in events} == {"transfer"}
        assert len({e["merchant_id"] for e in events}) == 1
        amounts = [e["amount"] for e in events]
        assert amounts == sorted(amounts)
        paid_before = {e["merchant_id"] for e in txs if e["account_id"] == account and _t(e) < _t(events[0])}
        assert events[0]["merchant_id"] not in paid_before
