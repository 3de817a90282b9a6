"""The tiered scorer: identical scores whole vs resumed, reason codes, the LLM grey band and its fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npusuite.fraud.bundle import load_scorer
from npusuite.fraud.datasets import read_transactions
from npusuite.fraud.features import AccountState
from npusuite.fraud.replay import replay


@pytest.fixture(scope="module")
def transactions(fraud_data):
    return read_transactions(fraud_data.transactions)[0]


def test_score_whole_equals_resumed_from_serialised_state(fraud_model, transactions):
    model_dir, _ = fraud_model
    scorer = load_scorer(model_dir)
    whole = replay(scorer, transactions, {}, batch_size=200)
    half = len(transactions) // 2
    states: dict[str, AccountState] = {}
    head = replay(scorer, transactions[:half], states, batch_size=200)
    saved = {k: v.to_bytes() for k, v in states.items()}
    resumed = {k: AccountState.from_bytes(v) for k, v in saved.items()}
    tail = replay(scorer, transactions[half:], resumed, batch_size=137)  # other batch boundaries too
    got = head + tail
    assert [r.score.transaction_id for r in got] == [r.score.transaction_id for r in whole]
    np.testing.assert_allclose([r.features.values for r in got], [r.features.values for r in whole], atol=1e-6)
    np.testing.assert_allclose([r.score.score for r in got], [r.score.score for r in whole], atol=1e-6, rtol=0)
    assert [r.score.decision for r in got] == [r.score.decision for r in whole]
    assert any(r.escalated for r in whole), "the grey band should see some traffic"


def _cli(*args: str) -> int:
    """``npusuite ARGS`` through the real entry point, in this process (saves two interpreter starts)."""
    from npusuite.platform.cli import main

    with pytest.raises(SystemExit) as done:
        main(list(args))
    return int(done.value.code or 0)


def test_cli_score_with_warmup_equals_whole_replay(fraud_model, fraud_data, tmp_path, capsys):
    model_dir, _ = fraud_model
    lines = fraud_data.transactions.read_text().splitlines(keepends=True)[:4000]  # a smaller file: two CLI runs
    half = len(lines) // 2
    (tmp_path / "all.jsonl").write_text("".join(lines))
    (tmp_path / "head.jsonl").write_text("".join(lines[:half]))
    (tmp_path / "tail.jsonl").write_text("".join(lines[half:]))
    code = _cli("fraud", "score", "--model", str(model_dir), "--input", str(tmp_path / "all.jsonl"),
                "--out", str(tmp_path / "whole.jsonl"))
    assert code == 0, capsys.readouterr().err[-2000:]
    code = _cli("fraud", "score", "--model", str(model_dir), "--input", str(tmp_path / "tail.jsonl"),
                "--warmup", str(tmp_path / "head.jsonl"), "--out", str(tmp_path / "tail-scores.jsonl"),
                "--batch-size", "100")
    assert code == 0, capsys.readouterr().err[-2000:]
    a = [json.loads(s) for s in (tmp_path / "whole.jsonl").read_text().splitlines()][half:]
    b = [json.loads(s) for s in (tmp_path / "tail-scores.jsonl").read_text().splitlines()]
    assert [x["transaction_id"] for x in a] == [x["transaction_id"] for x in b]
    np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], atol=1e-6, rtol=0)
    assert all(x["model"].startswith("fraud-fast@1") for x in b)
    assert set(b[0]) >= {"transaction_id", "score", "decision", "reasons", "model", "latency_ms"}


def test_reasons_name_the_typology_signals(fraud_model, fraud_data, transactions):
    from npusuite.fraud.datasets import read_labels

    labels = read_labels(fraud_data.labels)
    scorer = load_scorer(fraud_model[0], with_llm=False)
    results = replay(scorer, transactions, {}, batch_size=256)
    text = {kind: " | ".join(r for res, tx in zip(results, transactions, strict=True)
                             if labels[tx.transaction_id].fraud_type == kind for r in res.score.reasons)
            for kind in ("card_testing", "cloned_card", "account_takeover")}
    assert "card testing" in text["card_testing"]
    assert "km/h" in text["cloned_card"] or "first transaction in country" in text["cloned_card"]
    assert "new device" in text["account_takeover"] or "payee" in text["account_takeover"]
    assert all(1 <= len(r.score.reasons) <= 4 for r in results)


def test_grey_band_without_llm_falls_back_with_reason(fraud_model, transactions):
    scorer = load_scorer(fraud_model[0], with_llm=False)
    results = replay(scorer, transactions[:3000], {}, batch_size=500)
    grey = [r for r in results if r.escalated]
    assert grey and all(r.llm_fallback and "llm_unavailable" in r.score.reasons for r in grey)
    assert all("+" not in r.score.model for r in results)


def test_llm_failure_falls_back(fraud_model, transactions):
    scorer = load_scorer(fraud_model[0])

    class Broken:
        ref = "broken@1"

        def fraud_probabilities(self, items):
            raise RuntimeError("device lost")

    scorer.llm = Broken()
    results = replay(scorer, transactions[:3000], {}, batch_size=500)
    assert any(r.llm_fallback for r in results)


def test_repository_reference_loads_both_tiers(fraud_model):
    _, root = fraud_model
    scorer = load_scorer("fraud-fast@production", root)
    assert scorer.ref == "fraud-fast@1" and scorer.llm is not None and scorer.llm.ref == "fraud-llm@1"


def test_a_model_trained_on_other_features_is_refused(fraud_model):
    from npusuite.fraud.fast_model import FastModel
    from npusuite.fraud.scorer import TieredScorer
    from npusuite.platform.errors import UserError

    fast = FastModel.load(fraud_model[0] / "fast")
    old = FastModel(fast.module, fast.ref, {**fast.card, "features": fast.card["features"][:-2]})
    with pytest.raises(UserError, match="different feature set"):
        TieredScorer(old)
