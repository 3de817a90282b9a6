"""The live scorer's two feature implementations share one changelog: a snapshot written by either
restores in the other to the same state, and replayed transactions advance it the same way."""

from __future__ import annotations

import json

from npusuite.fraud.feature_kernel import KernelState
from npusuite.fraud.features import HISTORY_ROWS, AccountState
from npusuite.fraud.service.scoring import LiveScorer


def _raw(fraud_data) -> list[bytes]:
    lines = [line for line in fraud_data.transactions.read_bytes().splitlines() if line.strip()]
    account = json.loads(lines[0])["account_id"]
    return [line for line in lines if json.loads(line)["account_id"] == account][:40]


def test_snapshots_restore_across_feature_implementations(fraud_data):
    raw = _raw(fraud_data)
    assert len(raw) >= 20
    kernel, python = LiveScorer(None, features="kernel"), LiveScorer(None, features="python")
    k_state = kernel.restore_state(None, raw[:25])
    p_state = python.restore_state(None, raw[:25])
    assert isinstance(k_state, KernelState) and isinstance(p_state, AccountState)
    assert kernel.encode_state(k_state) == python.encode_state(p_state)
    # Each restores the other's snapshot, then replays the rest the same way.
    from_python = kernel.restore_state(python.encode_state(p_state), raw[25:])
    from_kernel = python.restore_state(kernel.encode_state(k_state), raw[25:])
    assert from_python.to_reference() == from_kernel
    assert kernel.encode_state(from_python) == python.encode_state(from_kernel)


def test_restored_states_keep_the_last_8_feature_rows(fraud_data):
    """A snapshot carries the history; the transactions replayed after it push theirs: the restored state's
    rows are the last 8 of one uninterrupted replay, in both implementations."""
    raw = _raw(fraud_data)
    for features in ("kernel", "python"):
        scorer = LiveScorer(None, features=features)
        whole = scorer.restore_state(None, raw)
        assert len(whole.recent_rows()) == HISTORY_ROWS
        for cut in (3, 25, len(raw) - 2):
            snapshot = scorer.encode_state(scorer.restore_state(None, raw[:cut]))
            resumed = scorer.restore_state(snapshot, raw[cut:])
            assert resumed.history == whole.history, (features, cut)
            assert scorer.encode_state(resumed) == scorer.encode_state(whole)
    python_whole = LiveScorer(None, features="python").restore_state(None, raw)
    assert python_whole.history == LiveScorer(None, features="kernel").restore_state(None, raw).history
