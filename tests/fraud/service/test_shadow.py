"""Shadow scoring without Kafka: the processor with the real live scorer on real engines (``fraud-fast@1`` the
champion, ``fraud-fast@2`` the challenger).  The challenger adds one shadow record per score and changes nothing
else; when it fails, the champion's batch is whole and the skipped shadow scores are counted; a challenger that
cannot be shadowed is refused at start-up."""

from __future__ import annotations

import json
import shutil

import pytest

from npusuite.fraud.service.account_store import AccountStore
from npusuite.fraud.service.config import ModelConfig, Topics
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.processor import InRecord, process_batch
from npusuite.fraud.service.scoring import build_live_scorer
from npusuite.fraud.service.shadow import ShadowScorer, challenger_reference
from npusuite.platform.errors import UserError
from npusuite.platform.repository import ModelRepository

TOPICS = Topics()
CHANGELOG = "g-account-state"


@pytest.fixture(scope="module")
def shadow_root(fast_model_repo, tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow") / "models"
    shutil.copytree(fast_model_repo, root)
    ModelRepository(root).promote("fraud-fast", "2", "challenger")
    return root


def records(transactions: list[dict]) -> list[InRecord]:
    return [InRecord(0, i, tx["account_id"].encode(), json.dumps(tx).encode(), 1_700_000_000_000)
            for i, tx in enumerate(transactions)]


def without_latency(value: bytes) -> dict:
    fields = json.loads(value)
    fields.pop("latency_ms", None)  # timing, not a decision: differs between any two runs
    return fields


def run_batches(scorer, transactions: list[dict], size: int = 150):
    store, outcomes = AccountStore(20), []
    store.set_partition(0, {})
    recs = records(transactions)
    for i in range(0, len(recs), size):
        outcomes.append(process_batch(recs[i:i + size], store, scorer, TOPICS, CHANGELOG))
    return outcomes


def test_the_challenger_adds_one_shadow_score_per_score_and_changes_nothing_else(shadow_root, stream_transactions):
    transactions = stream_transactions[:600]
    alone = build_live_scorer(ModelConfig(model="fraud-fast", model_root=shadow_root))
    paired = build_live_scorer(ModelConfig(model="fraud-fast", model_root=shadow_root, shadow="challenger"))
    try:
        plain = [r for o in run_batches(alone, transactions) for r in o.records]
        outcomes = run_batches(paired, transactions)
    finally:
        alone.close()
        paired.close()
    shadowed = [r for o in outcomes for r in o.records]
    shadow = [r for r in shadowed if r.topic == TOPICS.shadow_scores]
    rest = [r for r in shadowed if r.topic != TOPICS.shadow_scores]
    assert [json.loads(r.value)["transaction_id"] for r in shadow] == [tx["transaction_id"] for tx in transactions]
    assert {json.loads(r.value)["model"] for r in shadow} == {"fraud-fast@2"}
    assert [r.key for r in shadow] == [tx["account_id"].encode() for tx in transactions]
    assert sum(o.shadow["scored"] for o in outcomes) == len(transactions)
    assert not any(o.shadow["skipped"] for o in outcomes)
    # Scores, alerts and changelog (state) records are the champion's own, record for record.
    assert [(r.topic, r.key) for r in rest] == [(r.topic, r.key) for r in plain]
    for a, b in zip(rest, plain, strict=True):
        if a.topic == CHANGELOG:
            assert a.value == b.value
        else:
            assert without_latency(a.value) == without_latency(b.value)


def test_a_failing_challenger_skips_its_shadow_scores_and_the_champion_batch_is_whole(shadow_root,
                                                                                       stream_transactions):
    transactions = stream_transactions[:300]
    scorer = build_live_scorer(ModelConfig(model="fraud-fast", model_root=shadow_root, shadow="challenger"))
    metrics = ServiceMetrics()
    try:
        scorer.shadow.engine.unload()  # the challenger is gone (unloaded) while the champion scores
        outcomes = run_batches(scorer, transactions)
    finally:
        scorer.close()
    for outcome in outcomes:
        metrics.observe_committed(outcome)
    out = [r for o in outcomes for r in o.records]
    assert not [r for r in out if r.topic == TOPICS.shadow_scores]
    assert len([r for r in out if r.topic == TOPICS.scores]) == len(transactions)
    assert not [r for r in out if r.topic == TOPICS.dlq]
    assert metrics.registry.get_sample_value("npusuite_fraud_shadow_skipped_total") == len(transactions)
    assert metrics.registry.get_sample_value("npusuite_fraud_transactions_total") == len(transactions)


def test_a_challenger_that_cannot_be_shadowed_is_refused_at_start(shadow_root, tmp_path):
    repo = ModelRepository(shadow_root)
    src = tmp_path / "other-features"
    shutil.copytree(repo.resolve("fraud-fast", "2").path, src)
    (src / "manifest.json").unlink()
    card = json.loads((src / "card.json").read_text())
    card["features"] = list(reversed(card["features"]))  # another feature set: the rows would be misread
    (src / "card.json").write_text(json.dumps(card))
    repo.promote("fraud-fast", repo.add("fraud-fast", src).version, "odd")
    with pytest.raises(UserError, match="different feature set"):
        ShadowScorer.open("odd", shadow_root, "fraud-fast")
    with pytest.raises(UserError, match="no version or alias 'nope'"):
        ShadowScorer.open("nope", shadow_root, "fraud-fast")
    with pytest.raises(UserError, match="--shadow needs --model-root"):
        ShadowScorer.open("challenger", None, "fraud-fast")
    assert challenger_reference("challenger", "fraud-fast") == "fraud-fast@challenger"
    assert challenger_reference("other@3", "fraud-fast") == "other@3"
