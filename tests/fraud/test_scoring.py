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


@pytest.fixture(scope="module")
def sequence_novelty(fraud_data):
    """A novelty model with its sequence detector, trained small on the session's stream."""
    from npusuite.fraud.novelty import NoveltyModel, NoveltyTrainConfig, train_novelty
    from npusuite.fraud.novelty_rule import NoveltyConfig
    from npusuite.fraud.novelty_sequence import SequenceTrainConfig
    from npusuite.fraud.training import load_dataset

    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    config = NoveltyTrainConfig(epochs=1, hidden=8, bottleneck=2, trees=20, tree_rows=128,
                                sequence=SequenceTrainConfig(hidden=16, epochs=1))
    module, card = train_novelty(ds.x, ds.y, config, transactions=ds.transactions)
    return NoveltyModel(module, "fraud-novelty@seq", card, NoveltyConfig.from_card(card))


def test_a_sequence_novelty_tier_scores_the_same_whole_resumed_and_on_either_feature_implementation(
        fraud_model, transactions, sequence_novelty):
    """The sequence detector reads each account's previous rows from its state: they survive a snapshot, a
    repeated account's earlier row in the same batch counts, and the kernel batch gives the reference's scores."""
    from npusuite.fraud.service.scoring import FEATURE_IMPLEMENTATIONS

    model_dir, _ = fraud_model
    scorer = load_scorer(model_dir)
    scorer.novelty = sequence_novelty
    txs = transactions[:3000]
    whole = replay(scorer, txs, {}, batch_size=200)
    half = len(txs) // 2
    states: dict[str, AccountState] = {}
    head = replay(scorer, txs[:half], states, batch_size=200)
    resumed = {k: AccountState.from_bytes(v.to_bytes()) for k, v in states.items()}
    got = head + replay(scorer, txs[half:], resumed, batch_size=137)  # other batches: float32 sums may differ
    np.testing.assert_allclose([r.fields["score"] for r in got], [r.fields["score"] for r in whole], atol=1e-6,
                               rtol=0)
    for field in ("decision", "reason_codes", "model"):
        assert [r.fields[field] for r in got] == [r.fields[field] for r in whole], field
    sequence_reasons = [r for r in whole if any("where the account's last" in p for p in r.fields["reasons"])]
    assert sequence_reasons, "the sequence detector should raise some transactions"
    for kind in ("python", "kernel"):
        state_type, tiered = FEATURE_IMPLEMENTATIONS[kind]
        live = tiered(scorer.fast, scorer.llm, scorer.config, novelty=sequence_novelty)
        live_states: dict[str, object] = {}
        out = []
        for start in range(0, len(txs), 200):
            batch = txs[start:start + 200]
            items = [(tx, live_states.setdefault(tx.account_id, state_type())) for tx in batch]
            out += live.score_batch(items)
        assert [r.fields for r in out] == [{**r.fields, "latency_ms": o.fields["latency_ms"]}
                                           for r, o in zip(whole, out, strict=True)], kind
