"""Sequence novelty (npusuite.fraud.novelty_sequence): the history index, legitimate-only training, the error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import torch

from npusuite.fraud.features import HISTORY_ROWS, HISTORY_WIDTH, N_FEATURES
from npusuite.fraud.novelty_sequence import (
    SequenceNovelty,
    SequenceTrainConfig,
    _history_inputs,
    fit_sequence_novelty,
    previous_rows,
    sequence_error,
)
from npusuite.platform.contracts.transaction import Transaction

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _tx(i: int, account: str, minutes: float) -> Transaction:
    return Transaction(transaction_id=f"t{i}", timestamp=T0 + timedelta(minutes=minutes), account_id=account,
                       card_id="c", amount=10.0, currency="GBP", merchant_id="m", merchant_category="5411",
                       channel="card_present", country="GB")


def test_previous_rows_are_the_same_accounts_earlier_rows_oldest_first():
    # Out of time order on purpose: row 3 (a, minute 0) is a's first transaction.
    txs = [_tx(0, "a", 10), _tx(1, "b", 5), _tx(2, "a", 20), _tx(3, "a", 0), _tx(4, "b", 6)]
    assert previous_rows(txs, 2).tolist() == [[-1, 3], [-1, -1], [3, 0], [-1, -1], [-1, 1]]
    # Rows outside `keep` are no one's history and have none.
    keep = np.array([False, True, True, True, True])
    assert previous_rows(txs, 2, keep).tolist() == [[-1, -1], [-1, -1], [-1, 3], [-1, -1], [-1, 1]]


def _regular_stream(accounts: int = 40, per_account: int = 30, seed: int = 0):
    """Each account's feature 0 climbs by one a transaction: what comes next is predictable from the past only."""
    rng = np.random.default_rng(seed)
    txs, rows = [], []
    for a in range(accounts):
        start = rng.uniform(-3, 3)
        for k in range(per_account):
            txs.append(_tx(len(txs), f"acc{a}", minutes=k * 60 + a))
            row = np.zeros(N_FEATURES)
            row[0] = start + 0.2 * k
            rows.append(row)
    order = np.argsort([tx.timestamp for tx in txs], kind="stable")
    return [txs[i] for i in order], np.asarray(rows, dtype=np.float32)[order]


SMALL = SequenceTrainConfig(history=4, hidden=16, epochs=15, batch=64, learning_rate=3e-3, seed=1)


def test_fraud_rows_never_change_the_weights():
    quick = SequenceTrainConfig(history=4, hidden=16, epochs=3, batch=64, seed=1)
    txs, x = _regular_stream()
    y = np.zeros(len(txs), dtype=bool)
    clean, _ = fit_sequence_novelty(txs, x, y, quick)
    hostile_x = x.copy()
    fraud = np.arange(5, len(txs), 17)
    hostile_x[fraud] = 1e6  # wild rows, labelled fraud: neither targets nor anyone's history
    y_fraud = y.copy()
    y_fraud[fraud] = True
    keep = ~y_fraud
    # The same legitimate rows, in the same order, without the fraud rows at all.
    alone, _ = fit_sequence_novelty([t for t, k in zip(txs, keep, strict=True) if k], x[keep], y[keep], quick)
    with_fraud, _ = fit_sequence_novelty(txs, hostile_x, y_fraud, quick)
    for a, b in zip(alone.state_dict().values(), with_fraud.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(clean.state_dict().values(), alone.state_dict().values(),
                                                       strict=True))


def test_a_break_in_the_accounts_own_pattern_scores_higher_than_its_continuation():
    txs, x = _regular_stream()
    model, calibration = fit_sequence_novelty(txs, x, np.zeros(len(txs), dtype=bool), SMALL)
    assert len(calibration) == round(0.2 * len(txs))
    # The same account's next row, continuing its climb or jumping back to where it started.
    account = [i for i, tx in enumerate(txs) if tx.account_id == "acc3"]
    last = account[-1]
    follow = _tx(len(txs), "acc3", minutes=10_000)
    cont, jump = x[last].copy(), x[last].copy()
    cont[0] += 0.2
    jump[0] -= 0.2 * 29
    errors = [sequence_error(model, [*txs, follow], np.vstack([x, row]), np.array([len(txs)]))[0]
              for row in (cont, jump)]
    assert errors[1] > 10 * errors[0], errors
    legitimate = sequence_error(model, txs, x, calibration)
    assert np.isfinite(legitimate).all() and errors[1] > np.quantile(legitimate, 0.99)


def test_the_compiled_history_inputs_equal_the_numpy_standardisation():
    """The GRU's live input, built in one compiled pass, is the reference expression: NaN reads as 0, infinities
    and huge values clip to +-10, key columns and absent rows are 0, the last column is the presence flag."""
    rng = np.random.default_rng(3)
    model = SequenceNovelty(N_FEATURES, SequenceTrainConfig())
    model.mean.copy_(torch.from_numpy(rng.normal(size=N_FEATURES).astype(np.float32)))
    model.scale.copy_(torch.from_numpy(rng.uniform(0.1, 3.0, N_FEATURES).astype(np.float32)))
    n = 50
    rows = (rng.normal(size=(n, HISTORY_ROWS, HISTORY_WIDTH)) * 5).astype(np.float32)
    rows[0, 3, 0], rows[1, 7, 5], rows[2, 0, 9], rows[3, 2, 4] = np.nan, np.inf, -np.inf, 3e38
    present = rng.random((n, HISTORY_ROWS)) < 0.7
    present[0, 3] = present[1, 7] = present[2, 0] = present[3, 2] = True
    got = _history_inputs(rows, present, model.mean.numpy(), model.scale.numpy(), model.keep.numpy(), N_FEATURES)
    full = np.zeros((n * HISTORY_ROWS, N_FEATURES), dtype=np.float32)
    full[:, :HISTORY_WIDTH] = rows.reshape(n * HISTORY_ROWS, -1)
    full[np.isnan(full)] = 0.0
    past = model.standardise(full).reshape(n, HISTORY_ROWS, -1) * present[..., None]
    expected = np.concatenate([past, present[..., None].astype(np.float32)], axis=2)
    assert got.dtype == np.float32 and got.shape == (n, HISTORY_ROWS, N_FEATURES + 1)
    assert np.array_equal(got, expected)
    assert got[0, 3, 0] == np.float32(-model.mean[0] / model.scale[0]) or got[0, 3, 0] in (-10, 10)
    assert got[1, 7, 5] == 10 and got[2, 0, 9] == -10 and got[3, 2, 4] == 10
    assert not got[~present].any()
