"""The compiled feature kernel, one call per transaction and one per batch (:mod:`npusuite.fraud.feature_kernel_batch`),
against the Python reference: bit-identical features and states."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from npusuite.fraud import feature_kernel, features
from npusuite.fraud.feature_kernel import KernelState
from npusuite.fraud.feature_kernel_batch import advance_batch, advance_batch_with_history
from npusuite.fraud.features import HISTORY_ROWS, HISTORY_WIDTH, history_block
from npusuite.fraud.schema import Transaction, parse_transaction
from npusuite.platform.errors import SchemaError


def _generated(accounts: int, days: int, seed: int, limit: int) -> list[Transaction]:
    from npusuite.fraud.generator import GeneratorConfig, generate

    rows = generate(GeneratorConfig(accounts=accounts, days=days, seed=seed), progress=False)[0]
    assert len(rows) >= limit, f"the generator gave {len(rows)} transactions, wanted {limit}"
    return [parse_transaction(r) for r in rows[:limit]]


def _replay_and_compare(txs: list[Transaction], check_state_every: int) -> None:
    """Replay ``txs`` through both; every feature and every history bit-identical, states equal (every
    ``check_state_every``-th transaction's account, and every account at the end) and with identical snapshot
    bytes, which restore in both to the same state."""
    ref_states: dict[str, features.AccountState] = {}
    kernel_states: dict[str, KernelState] = {}
    for i, tx in enumerate(txs):
        ref = ref_states.setdefault(tx.account_id, features.AccountState())
        kern = kernel_states.setdefault(tx.account_id, KernelState())
        expected = features.advance(ref, tx).values
        got = feature_kernel.advance(kern, tx).values
        # Bit for bit: the repr of a float is exact (== would pass 0.0 for -0.0).
        assert list(map(repr, got)) == list(map(repr, expected)), f"transaction {i} ({tx.transaction_id})"
        assert kern.history == ref.history, f"history after transaction {i}"
        assert kern.recent_rows()[-1].tobytes() == np.float32(expected[:HISTORY_WIDTH]).tobytes()
        if i % check_state_every == 0:
            assert kern.to_reference() == ref, f"state after transaction {i}"
    for account, ref in ref_states.items():
        raw = kernel_states[account].to_bytes()
        assert raw == ref.to_bytes(), f"account {account}"
        assert features.AccountState.from_bytes(raw) == ref
        assert KernelState.from_bytes(raw).to_bytes() == raw
    assert any(len(ref.history) == HISTORY_ROWS * HISTORY_WIDTH * 4 for ref in ref_states.values())


def test_kernel_matches_reference_on_a_generated_stream():
    _replay_and_compare(_generated(accounts=150, days=10, seed=5, limit=4000), check_state_every=7)


@pytest.mark.slow
def test_kernel_matches_reference_on_a_50k_transaction_replay():
    _replay_and_compare(_generated(accounts=1900, days=10, seed=1, limit=50_000), check_state_every=97)


T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _tx(i: int, seconds: float, **kw) -> Transaction:
    base = dict(transaction_id=f"t{i}", timestamp=T0 + timedelta(seconds=seconds), account_id="A", card_id="C",
                amount=20.0, currency="EUR", merchant_id="M1", merchant_category="5411", channel="card_present",
                country="DE", lat=52.5, lon=13.4, device_id=None, ip=None)
    base.update(kw)
    return Transaction(**base)


def edge_stream() -> list[Transaction]:
    """Bounds and odd input, one account: > MAX_SEEN merchants and devices (eviction order), > MAX_WINDOW
    entries in a week, out-of-order timestamps, extreme amounts, IPv6 and no device, no location, every
    channel."""
    rng = random.Random(3)
    channels = ("card_present", "ecommerce", "atm", "transfer")
    txs, t = [], 0.0
    for i in range(2600):
        t += rng.choice((0.5, 3.0, 40.0, 200.0, -90.0, 4000.0))  # some steps go back in time
        kw = dict(amount=rng.choice((1e-320, 0.5, 3.0, 20.0, 999.99, 1.7e308)), channel=rng.choice(channels),
                  merchant_id=f"M{rng.randrange(700)}", country=rng.choice(("DE", "FR", "GB")),
                  merchant_category=rng.choice(("5411", "6011", "5999")))
        if rng.random() < 0.5:
            kw["device_id"] = f"D{rng.randrange(600)}"
        if rng.random() < 0.5:
            kw["ip"] = rng.choice((f"10.{rng.randrange(300)}.1.2", f"2001:db8:{rng.randrange(500):x}::1"))
        if rng.random() < 0.3:
            kw["lat"] = kw["lon"] = None
        txs.append(_tx(i, max(0.0, t), **kw))
    return txs


def test_kernel_matches_reference_at_the_edges():
    _replay_and_compare(edge_stream(), check_state_every=1)


def test_kernel_state_converts_both_ways_and_resumes():
    txs = [_tx(i, i * 90.0, amount=10.0 + i % 7, merchant_id=f"M{i % 11}") for i in range(60)]
    ref = features.AccountState()
    for tx in txs[:40]:
        features.advance(ref, tx)
    kern = KernelState.from_bytes(ref.to_bytes())
    assert kern.to_reference() == ref
    assert kern.history == ref.history and len(ref.history) == HISTORY_ROWS * HISTORY_WIDTH * 4
    for tx in txs[40:]:
        assert feature_kernel.advance(kern, tx).values == features.advance(ref, tx).values
    assert kern.to_bytes() == ref.to_bytes()
    assert kern.copy().to_bytes() == kern.to_bytes()
    assert kern.copy().history == kern.history
    assert np.array_equal(kern.recent_rows(), ref.recent_rows())


def test_kernel_state_snapshot_versions_and_hostile_histories():
    ref = features.AccountState()
    for i in range(5):
        features.advance(ref, _tx(i, i * 60.0))
    kern = KernelState.from_reference(ref)
    assert KernelState.from_bytes(KernelState().to_bytes()).history == b""
    # A version-1 snapshot (no history) restores with an empty one.
    doc = json.loads(kern.to_bytes())
    del doc["history"]
    doc["v"] = 1
    old = KernelState.from_bytes(json.dumps(doc).encode())
    assert old.history == b"" and old.recent_rows().shape == (0, HISTORY_WIDTH)
    assert old.to_reference() == dataclasses.replace(ref, history=b"")
    for bad in ("%%%", 7, base64.b64encode(bytes(9 * HISTORY_WIDTH * 4)).decode()):
        doc = json.loads(kern.to_bytes())
        doc["history"] = bad
        with pytest.raises(SchemaError):
            KernelState.from_bytes(json.dumps(doc).encode())
    # An AccountState built by hand with a history the kernel cannot hold is refused too.
    for bad in (b"\0" * 5, bytes(9 * HISTORY_WIDTH * 4), "text"):
        with pytest.raises(ValueError):
            KernelState.from_reference(dataclasses.replace(ref, history=bad))


def test_kernel_distance_is_the_references_bit_for_bit():
    """CPython's ``x ** 2`` is libm's pow, not ``x * x`` (they differ in the last bit now and then)."""
    from npusuite.fraud.world import haversine_km

    rng = random.Random(1)
    for _ in range(20_000):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        lat2, lon2 = ((lat + rng.uniform(-0.5, 0.5), lon + rng.uniform(-0.5, 0.5)) if rng.random() < 0.5
                      else (rng.uniform(-90, 90), rng.uniform(-180, 180)))
        assert repr(feature_kernel._haversine_km(lat, lon, lat2, lon2, 2.0)) == repr(haversine_km(lat, lon, lat2, lon2))


# -- the batch kernel ----------------------------------------------------------------------------
def _replay_in_batches(txs: list[Transaction], batch: int, states: dict[str, KernelState] | None = None,
                       refs: dict[str, features.AccountState] | None = None, with_history: bool = False) -> None:
    """Batches of ``batch`` through :func:`advance_batch` (an account's repeats chained in one batch), each
    row bit-identical to the reference's features, every state's snapshot bytes (so its history) equal at every
    batch end.  ``with_history``: through :func:`advance_batch_with_history`, whose before-histories must be
    :func:`history_block` of the reference's ``recent_rows()`` just before each one-by-one call."""
    states = {} if states is None else states
    refs = {} if refs is None else refs
    for start in range(0, len(txs), batch):
        chunk = txs[start:start + batch]
        batch_states = [states.setdefault(tx.account_id, KernelState()) for tx in chunk]
        if with_history:
            got, rows, present = advance_batch_with_history(batch_states, chunk)
        else:
            got = advance_batch(batch_states, chunk)
        assert got.shape == (len(chunk), features.N_FEATURES) and got.dtype == np.float64
        before = []
        for i, (tx, row) in enumerate(zip(chunk, got.tolist(), strict=True)):
            ref = refs.setdefault(tx.account_id, features.AccountState())
            before.append(ref.history)
            expected = features.advance(ref, tx).values
            # Bit for bit: the repr of a float is exact (== would pass 0.0 for -0.0).
            assert list(map(repr, row)) == list(map(repr, expected)), f"transaction {start + i}"
        if with_history:
            want_rows, want_present = history_block(before)
            assert rows.dtype == np.float32 and rows.shape == (len(chunk), HISTORY_ROWS, HISTORY_WIDTH)
            assert rows.tobytes() == want_rows.tobytes() and np.array_equal(present, want_present)
        for tx in chunk:
            assert states[tx.account_id].history == refs[tx.account_id].history, f"after batch at {start}"
            assert states[tx.account_id].to_bytes() == refs[tx.account_id].to_bytes(), f"after batch at {start}"


def test_batch_matches_reference_on_a_generated_stream():
    # 150 accounts, batches of 500: most accounts appear several times in a batch.
    _replay_in_batches(_generated(accounts=150, days=10, seed=5, limit=4000), batch=500)


def test_batch_with_history_matches_one_call_per_transaction():
    """The before-histories of a batch: a repeated account's later transactions see its earlier ones' rows."""
    _replay_in_batches(_generated(accounts=150, days=10, seed=5, limit=4000), batch=500, with_history=True)


def test_batch_with_history_chains_an_accounts_repeats_in_list_order():
    a, b, one_by_one = KernelState(), KernelState(), {"A": KernelState(), "B": KernelState()}
    txs = [_tx(i, i * 30.0, account_id="AB"[i % 2 if i < 6 else 0], amount=5.0 + i, merchant_id=f"M{i}")
           for i in range(16)]  # A B A B A B, then ten of A (A's history overflows 8 rows inside the batch)
    expected_before, expected_rows = [], []
    for tx in txs:
        state = one_by_one[tx.account_id]
        expected_before.append(state.history)
        expected_rows.append(feature_kernel.advance(state, tx).values)
    states = [a if tx.account_id == "A" else b for tx in txs]
    matrix, rows, present = advance_batch_with_history(states, txs)
    assert matrix.tolist() == [list(v) for v in expected_rows]
    want_rows, want_present = history_block(expected_before)
    assert rows.tobytes() == want_rows.tobytes() and present.tolist() == want_present.tolist()
    assert present.sum(axis=1).tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8]
    # Transaction 2 (A's second) sees exactly A's first row, at the last index.
    assert rows[2, 7].tobytes() == np.float32(expected_rows[0][:HISTORY_WIDTH]).tobytes()
    assert a.history == one_by_one["A"].history and b.history == one_by_one["B"].history
    assert a.to_bytes() == one_by_one["A"].to_bytes()
    empty = advance_batch_with_history([], [])
    assert [x.shape for x in empty] == [(0, features.N_FEATURES), (0, HISTORY_ROWS, HISTORY_WIDTH), (0, HISTORY_ROWS)]


def test_batch_matches_reference_when_tables_grow_and_evict_inside_a_batch():
    """One account, whole batches of it: its tables grow (and the window and first-seen tables evict)
    between rows of one call, which stops and resumes the compiled loop."""
    _replay_in_batches(edge_stream(), batch=700, with_history=True)


def test_batch_continues_a_restored_state_and_matches_one_call_per_transaction():
    txs = [_tx(i, i * 90.0, amount=10.0 + i % 7, merchant_id=f"M{i % 11}", device_id=f"D{i % 3}",
               ip=f"10.{i % 5}.0.1") for i in range(90)]
    ref = features.AccountState()
    for tx in txs[:40]:
        features.advance(ref, tx)
    restored = KernelState.from_bytes(ref.to_bytes())  # tables sized by the snapshot, not a new state's
    one_by_one = restored.copy()
    _replay_in_batches(txs[40:], batch=17, states={"A": restored}, refs={"A": ref})
    for tx in txs[40:]:
        feature_kernel.advance(one_by_one, tx)
    assert one_by_one.to_bytes() == restored.to_bytes() == ref.to_bytes()


def test_copies_of_a_state_never_share_its_addresses():
    """The batch kernel writes through cached addresses: a deep copy or a pickled state must get its own."""
    import copy
    import pickle

    txs = [_tx(i, i * 60.0, merchant_id=f"M{i}") for i in range(12)]  # grows the tables on the way
    state = KernelState()
    advance_batch([state] * 6, txs[:6])
    before = state.to_bytes()
    assert len(state.recent_rows()) == 6
    copies = [copy.deepcopy(state), pickle.loads(pickle.dumps(state)), state.copy()]
    for other in copies:
        assert other.to_bytes() == before and other.history == state.history
        advance_batch([other] * 6, txs[6:])
    assert state.to_bytes() == before  # the original untouched by its copies' batches
    advance_batch([state] * 6, txs[6:])
    assert all(other.to_bytes() == state.to_bytes() for other in copies)
    assert all(other.history == state.history and len(state.recent_rows()) == HISTORY_ROWS for other in copies)
    # A pickle from before the history (the seven arrays only) loads with an empty one.
    old = feature_kernel._kernel_state(*(getattr(state, name) for name in feature_kernel._ARRAYS))
    assert old.history == b"" and old.to_reference() == dataclasses.replace(state.to_reference(), history=b"")


def test_batch_of_nothing_and_replaced_arrays():
    assert advance_batch([], []).shape == (0, features.N_FEATURES)
    state = KernelState()
    state.window = np.zeros((8, 4), dtype=np.float32)  # not what the kernel reads through an address
    with pytest.raises(TypeError):
        advance_batch([state], [_tx(0, 0.0)])


@pytest.mark.slow
def test_batch_matches_reference_on_a_50k_transaction_replay():
    _replay_in_batches(_generated(accounts=1900, days=10, seed=1, limit=50_000), batch=2000)
