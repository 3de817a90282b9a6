"""Streaming features: pure, serialisable, and capturing what each typology looks like."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from npusuite.fraud.datasets import read_transactions
from npusuite.fraud.features import (
    FEATURE_NAMES,
    HISTORY_ROWS,
    HISTORY_WIDTH,
    KEY_FEATURES,
    STATE_VERSION,
    AccountState,
    StreamFeaturizer,
    advance,
    history_block,
    step,
)
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


# -- the history rows (the sequence novelty model's input) --------------------------------------
def test_history_width_is_the_features_before_the_category_keys():
    assert HISTORY_ROWS == 8 and HISTORY_WIDTH == 42
    assert FEATURE_NAMES[HISTORY_WIDTH:] == KEY_FEATURES


def test_state_remembers_the_last_8_feature_rows_oldest_first():
    state, returned = AccountState(), []
    assert state.history == b"" and state.recent_rows().shape == (0, HISTORY_WIDTH)
    for i, t in enumerate(history(13)):
        returned.append(advance(state, t).values)
        k = min(i + 1, HISTORY_ROWS)
        rows = state.recent_rows()
        assert rows.shape == (k, HISTORY_WIDTH) and rows.dtype == np.float32
        assert len(state.history) == k * HISTORY_WIDTH * 4
        # Exactly the float32 of the first 42 values advance returned, oldest first: bit for bit.
        want = np.array([v[:HISTORY_WIDTH] for v in returned[-k:]], dtype=np.float32)
        assert rows.tobytes() == want.tobytes()
        assert np.frombuffer(state.history, dtype="<f4").tobytes() == want.astype("<f4").tobytes()
    with pytest.raises(ValueError):  # read-only: the bytes are the state
        state.recent_rows()[0, 0] = 1.0


def test_step_copy_and_featurizer_keep_the_history():
    state = AccountState()
    for t in history(5):
        advance(state, t)
    before = state.history
    features, new_state = step(state, tx(99, 5 * 600.0 + 5, amount=400.0))
    assert state.history == before  # step is pure
    assert new_state.history[:-HISTORY_WIDTH * 4] == before
    assert new_state.recent_rows()[-1].tobytes() == np.float32(features.values[:HISTORY_WIDTH]).tobytes()
    copied = new_state.copy()
    assert copied == new_state and copied.history == new_state.history
    featurizer = StreamFeaturizer()
    matrix = featurizer.matrix(history(11))
    assert featurizer.states["A1"].recent_rows().tobytes() == matrix[-HISTORY_ROWS:, :HISTORY_WIDTH].tobytes()


def test_history_block_right_aligns_and_masks():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(HISTORY_ROWS, HISTORY_WIDTH)).astype("<f4")
    three = rng.normal(size=(3, HISTORY_WIDTH)).astype("<f4")
    rows, present = history_block([b"", three.tobytes(), full.tobytes(), three[:1].tobytes()])
    assert rows.shape == (4, HISTORY_ROWS, HISTORY_WIDTH) and rows.dtype == np.float32
    assert present.shape == (4, HISTORY_ROWS) and present.dtype == bool
    assert not present[0].any() and not rows[0].any()
    assert present[1].tolist() == [False] * 5 + [True] * 3
    assert not rows[1, :5].any() and np.array_equal(rows[1, 5:], three)  # the most recent row at index 7
    assert present[2].all() and np.array_equal(rows[2], full)
    assert present[3].tolist() == [False] * 7 + [True] and np.array_equal(rows[3, 7], three[0])
    assert history_block([])[0].shape == (0, HISTORY_ROWS, HISTORY_WIDTH)
    rows[1, 7, 0] = 99.0  # a writable copy, not a view of the states' bytes
    for bad in (bytes(4 * HISTORY_WIDTH * (HISTORY_ROWS + 1)), bytes(4 * HISTORY_WIDTH + 4), b"\0"):
        with pytest.raises(ValueError, match="history 1 has"):
            history_block([b"", bad])


def test_state_bytes_round_trip_with_history():
    state = AccountState()
    for t in history(12):
        advance(state, t)
    raw = state.to_bytes()
    doc = json.loads(raw)
    assert doc["v"] == STATE_VERSION == 2
    assert list(doc) == ["v", *(f.name for f in dataclasses.fields(AccountState))] and list(doc)[-1] == "history"
    assert base64.b64decode(doc["history"], validate=True) == state.history
    again = AccountState.from_bytes(raw)
    assert again == state and again.history == state.history and again.to_bytes() == raw
    assert AccountState.from_bytes(AccountState().to_bytes()) == AccountState()


def _v1_snapshot(state: AccountState) -> bytes:
    """The snapshot version 1 wrote: today's JSON without the history."""
    doc = json.loads(state.to_bytes())
    del doc["history"]
    doc["v"] = 1
    return json.dumps(doc).encode()


def test_version_1_snapshot_restores_with_an_empty_history():
    state = AccountState()
    for t in history(12):
        advance(state, t)
    restored = AccountState.from_bytes(_v1_snapshot(state))
    assert restored.history == b"" and restored.recent_rows().shape == (0, HISTORY_WIDTH)
    without = state.copy()
    without.history = b""
    assert restored == without
    # It goes on as any state would, its history filling from the next transaction.
    advance(restored, tx(50, 12 * 600.0 + 60))
    assert restored.recent_rows().shape == (1, HISTORY_WIDTH)
    v1_with_history = json.loads(_v1_snapshot(state))
    v1_with_history["history"] = ""
    with pytest.raises(SchemaError):
        AccountState.from_bytes(json.dumps(v1_with_history).encode())


def _hostile_histories() -> dict[str, object]:
    row = np.ones(HISTORY_WIDTH, dtype="<f4")
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    slashes = b64(b"\xff\xff\xff\xbf" * HISTORY_WIDTH)  # -1.9999999 (finite), "////v///..." in base64
    assert "/" in slashes
    urlsafe = slashes.replace("/", "_").replace("+", "-")
    return {
        "not base64": "not base64!!",
        "urlsafe alphabet": urlsafe,
        "not whole rows": b64(row.tobytes()[:-4]),
        "nine rows": b64(np.tile(row, HISTORY_ROWS + 1).tobytes()),
        "a number": 12,
        "a list": [1.0] * HISTORY_WIDTH,
        "null": None,
        "missing": ...,
        "huge": "A" * 10_000_000,
    }


@pytest.mark.parametrize("case", list(_hostile_histories()))
def test_hostile_history_in_a_snapshot_is_a_schema_error(case):
    value = _hostile_histories()[case]
    doc = json.loads(AccountState().to_bytes())
    if value is ...:
        del doc["history"]
    else:
        doc["history"] = value
    with pytest.raises(SchemaError, match="bad account state"):
        AccountState.from_bytes(json.dumps(doc).encode())


def test_a_history_with_non_finite_values_restores_as_written():
    """Any float32 is kept: a state the scorer wrote always restores (the sequence model sanitises its input)."""
    row = np.ones(HISTORY_WIDTH, dtype="<f4")
    row[0], row[5], row[7] = np.nan, -np.inf, np.inf
    doc = json.loads(AccountState().to_bytes())
    doc["history"] = base64.b64encode(row.tobytes()).decode()
    state = AccountState.from_bytes(json.dumps(doc).encode())
    assert state.history == row.tobytes() and AccountState.from_bytes(state.to_bytes()) == state


def test_a_row_beyond_float32_packs_as_numpys_cast_gives_it():
    """The features are log-scaled, so no real row leaves float32's range; should one, the reference's packing
    (struct refuses it) gives the bytes of numpy's cast (infinite), which the kernel's batch uses."""
    from npusuite.fraud.features import pack_row

    values = [1.0] * HISTORY_WIDTH
    values[:5] = [1e300, -1e300, 3.4028235e38, math.inf, 1e-50]
    with np.errstate(over="ignore"):
        expected = np.asarray(values).astype("<f4").tobytes()
    assert pack_row(values) == expected
    assert pack_row([2.5] * HISTORY_WIDTH) == np.full(HISTORY_WIDTH, 2.5, "<f4").tobytes()


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
    # The histories too: resumed from the snapshots, each account's last 8 rows are the whole replay's.
    whole_states = StreamFeaturizer()
    whole_states.matrix(txs)
    assert {k: v.history for k, v in resumed.states.items()} == {k: v.history for k, v in whole_states.states.items()}


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
