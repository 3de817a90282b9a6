"""Streaming features: pure, serialisable, and capturing what each typology looks like."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from npusuite.fraud.datasets import read_transactions
from npusuite.fraud.features import FEATURE_NAMES, AccountState, StreamFeaturizer, advance, step
from npusuite.fraud.schema import Transaction
from npusuite.platform.errors import SchemaError

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def tx(i: int, minutes: float, amount: float = 20.0, **kw) -> Transaction:
    base = dict(transaction_id=f"t{i}", timestamp=T0 + timedelta(minutes=minutes), account_id="A1", card_id="C1",
                amount=amount, currency="GBP", merchant_id="M1", merchant_category="5411", channel="card_present",
                country="GB", lat=51.5, lon=-0.12, device_id=None, ip=None)
    base.update(kw)
    return Transaction(**base)


def history(n: int = 30) -> list[Transaction]:
    return [tx(i, i * 600.0, amount=15.0 + (i % 5)) for i in range(n)]


def test_step_is_pure_and_advance_agrees():
    state = AccountState()
    for t in history(10):
        advance(state, t)
    before = state.to_bytes()
    new = tx(99, 10 * 600.0 + 5, amount=400.0)
    features, new_state = step(state, new)
    assert state.to_bytes() == before
    assert new_state.n == state.n + 1
    assert features.values == advance(state, new).values


def test_state_bytes_round_trip_exactly():
    state = AccountState()
    for t in history(40):
        advance(state, t)
    again = AccountState.from_bytes(state.to_bytes())
    assert again == state
    with pytest.raises(SchemaError):
        AccountState.from_bytes(b"{not json")
    with pytest.raises(SchemaError):
        AccountState.from_bytes(b'{"v": 99}')


def test_whole_replay_equals_replay_resumed_from_serialised_state(fraud_data):
    txs, _ = read_transactions(fraud_data.transactions)
    whole = StreamFeaturizer().matrix(txs)
    half = len(txs) // 2
    first = StreamFeaturizer()
    head = first.matrix(txs[:half])
    saved = {k: v.to_bytes() for k, v in first.states.items()}
    resumed = StreamFeaturizer({k: AccountState.from_bytes(v) for k, v in saved.items()})
    tail = resumed.matrix(txs[half:])
    np.testing.assert_allclose(np.vstack([head, tail]), whole, rtol=0, atol=1e-6)


def test_new_device_network_and_amount_against_history():
    state = AccountState()
    for i in range(20):
        advance(state, tx(i, i * 60.0 * 6, amount=20.0, channel="ecommerce", lat=None, lon=None,
                          device_id="D1", ip="81.2.3.4"))
    f = advance(state, tx(50, 200 * 60.0, amount=600.0, channel="transfer", merchant_id="P9",
                          merchant_category="4829", lat=None, lon=None, device_id="D2", ip="5.6.7.8")).as_dict()
    assert f["new_device"] == 1.0 and f["new_ip_net"] == 1.0 and f["new_merchant"] == 1.0
    assert np.exp(f["amount_to_median_log"]) == pytest.approx(30.0)
    assert f["amount_z"] > 5


def test_geo_speed_flags_impossible_travel():
    state = AccountState()
    advance(state, tx(1, 0.0))
    f = advance(state, tx(2, 60.0, lat=44.43, lon=26.10, country="RO"))  # Bucharest an hour after London
    speed = np.expm1(f["geo_speed_log"])
    assert 1900 < speed < 2300
    assert f["new_country"] == 1.0


def test_card_testing_burst_and_windows():
    state = AccountState()
    for t in history(20):
        advance(state, t)
    start = 20 * 600.0 + 30
    feats = [advance(state, tx(100 + k, start + k * 0.5, amount=1.0, channel="ecommerce", merchant_id=f"W{k % 3}",
                               merchant_category="5815", lat=None, lon=None, device_id="DX", ip="9.9.9.9"))
             for k in range(8)]
    last = feats[-1].as_dict()
    assert last["small_ecom_10m"] == 8 and last["small_ecom_merchants_10m"] == 3
    assert round(np.expm1(last["cnt_1m"])) == 2  # two payments in the minute before this one
    assert last["distinct_merchants_1h"] >= 3


def test_feature_names_match_vector_length():
    f = advance(AccountState(), tx(1, 0.0))
    assert len(f.values) == len(FEATURE_NAMES)
    assert all(np.isfinite(f.values))


def test_unfamiliar_access_marks_a_fresh_device_and_network_for_the_hour():
    state = AccountState()
    for i in range(10):
        advance(state, tx(i, i * 600.0, channel="ecommerce", lat=None, lon=None, device_id="D1", ip="81.2.3.4"))
    fresh = dict(channel="transfer", merchant_category="4829", lat=None, lon=None, device_id="DX", ip="5.6.7.8")
    first = advance(state, tx(20, 6100.0, amount=900.0, merchant_id="P1", **fresh)).as_dict()
    later = advance(state, tx(21, 6130.0, amount=900.0, merchant_id="P2", **fresh)).as_dict()
    much_later = advance(state, tx(22, 6100.0 + 7200, amount=900.0, merchant_id="P3", **fresh)).as_dict()
    assert first["unfamiliar_access"] == 1.0 and first["new_device"] == 1.0
    assert later["unfamiliar_access"] == 1.0 and later["new_device"] == 0.0  # same session, device now known
    assert much_later["unfamiliar_access"] == 0.0
    known = advance(state, tx(23, 6100.0 + 7300, channel="ecommerce", lat=None, lon=None, device_id="D1",
                              ip="81.2.9.9")).as_dict()
    assert known["unfamiliar_access"] == 0.0


def _brute_force_windows(state: AccountState, new: Transaction) -> dict[str, float]:
    """The window features by definition: every entry with ``t - wt <= span``, summed in window order."""
    t = new.epoch_s
    out = {}
    for name, span in (("1m", 60.0), ("1h", 3600.0), ("24h", 86400.0), ("7d", 7 * 86400.0)):
        inside = [w for w in state.window if t - w[0] <= span]
        total = 0.0
        for w in inside:
            total += w[1]
        out[f"cnt_{name}"], out[f"sum_{name}"] = math.log1p(len(inside)), math.log1p(total)
    day = [w for w in state.window if t - w[0] <= 86400.0]
    out["atm_cnt_24h"] = float(sum(w[2] == "atm" for w in day))
    out["distinct_merchants_1h"] = float(len({new.merchant_id} | {w[3] for w in state.window if t - w[0] <= 3600.0}))
    return out


def test_window_spans_match_their_definition_even_with_out_of_order_timestamps():
    rng = np.random.default_rng(7)
    state, minutes = AccountState(), 0.0
    for i in range(400):
        # Mostly forward in bursts and gaps (seconds to days), one in ten goes back in time.
        minutes += float(rng.choice([0.2, 3.0, 45.0, 700.0, 3000.0])) * (-0.5 if i % 10 == 9 else 1.0)
        t = tx(i, minutes, amount=float(rng.uniform(1, 300)), merchant_id=f"M{rng.integers(6)}",
               channel=str(rng.choice(["card_present", "ecommerce", "atm", "transfer"])))
        times_before = [w[0] for w in state.window]
        want = _brute_force_windows(state, t)
        got = advance(state, t).as_dict()
        assert {k: got[k] for k in want} == want, f"transaction {i}"
        if times_before and t.epoch_s < times_before[-1]:  # "no time passed": it takes the newest time
            assert state.window[-1][0] == times_before[-1]
        assert [w[0] for w in state.window] == sorted(w[0] for w in state.window)
        assert state.window[0][0] >= max(times_before + [t.epoch_s]) - 7 * 86400.0
