"""The behavioural profile reads the past only and measures what its docs say."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from npusuite.fraud.novelty_profile import PROFILE_NAMES, ProfileBuilder
from npusuite.fraud.schema import Transaction

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _tx(i: int, when: datetime, amount: float = 10.0, account: str = "a", merchant: str = "m1",
        channel: str = "card_present") -> Transaction:
    return Transaction(transaction_id=f"t{i}", timestamp=when, account_id=account, card_id="c", amount=amount,
                       currency="GBP", merchant_id=merchant, merchant_category="5411", channel=channel,
                       country="GB")


def test_rows_read_the_past_only() -> None:
    txs = [_tx(i, T0 + timedelta(days=i), amount=10.0 + i) for i in range(10)]
    whole = ProfileBuilder().matrix(txs)
    prefix = ProfileBuilder().matrix(txs[:6])
    np.testing.assert_array_equal(whole[:6], prefix)  # later transactions never change an earlier row
    assert whole.shape == (10, len(PROFILE_NAMES))


def test_dormancy_channel_amount_and_population() -> None:
    txs = [_tx(i, T0 + timedelta(days=i)) for i in range(10)]
    txs.append(_tx(10, T0 + timedelta(days=9 + 90), amount=500.0, channel="transfer", merchant="new"))
    txs.append(_tx(11, T0 + timedelta(days=100), account="b", merchant="m1"))
    rows = ProfileBuilder().matrix(txs)
    col = {n: i for i, n in enumerate(PROFILE_NAMES)}
    last = rows[10]
    assert math.isclose(last[col["gap_to_usual_log"]], math.log(90.0), rel_tol=1e-5)  # 90 days against 1
    assert last[col["channel_share"]] == 0.0 and last[col["amount_percentile"]] == 1.0
    assert last[col["payee_population_log"]] == 0.0  # nobody paid "new" before
    assert math.isclose(rows[11][col["payee_population_log"]], math.log(2.0), rel_tol=1e-5)  # account a paid m1
    assert rows[1][col["gap_to_usual_log"]] == 0.0 and rows[0].tolist() == [0, 0, 0, 0, 0.5, 0, 0, 0]
