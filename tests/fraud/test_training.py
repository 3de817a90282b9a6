"""Training: both models saved with cards, published to the platform repository, labels merged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npusuite.fraud.datasets import merge_labels, read_labels, read_transactions
from npusuite.fraud.schema import Label
from npusuite.fraud.training import choose_thresholds, load_dataset
from npusuite.platform.errors import SchemaError
from npusuite.platform.repository import ModelRepository


def test_cards_and_repository_versions(fraud_model):
    model_dir, root = fraud_model
    card = json.loads((model_dir / "card.json").read_text())
    assert card["ref"] == "fraud-fast@1" and card["llm"] == "fraud-llm@1"
    t = card["thresholds"]
    assert 0 < t["grey_low"] <= t["grey_high"] <= t["decline"] and t["review"] <= t["decline"]
    assert card["data"]["fraud"] > 0 and card["metrics_calibration_slice"]["average_precision"] > 0.3
    assert card["llm_card"]["precision"] == "int8" and "holdout" in card["llm_card"]
    repo = ModelRepository(root)
    fast = repo.resolve("fraud-fast")          # verifies checksums
    llm = repo.resolve("fraud-llm", "production")
    assert fast.manifest.metadata["model_card"]["thresholds"] == t
    assert fast.manifest.arch_module == "npusuite.fraud.fast_model"
    assert llm.manifest.kind == "causal-lm" and llm.manifest.precision == "int8"


def test_later_label_files_win(tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text('{"transaction_id": "t1", "is_fraud": false, "fraud_type": null}\n'
                 '{"transaction_id": "t2", "is_fraud": true, "fraud_type": "card_testing"}\n')
    b.write_text('{"transaction_id": "t1", "is_fraud": true, "fraud_type": "account_takeover"}\n')
    merged = merge_labels([read_labels(a), read_labels(b)])
    assert merged["t1"] == Label(transaction_id="t1", is_fraud=True, fraud_type="account_takeover")
    assert merged["t2"].is_fraud
    assert not merge_labels([read_labels(b), read_labels(a)])["t1"].is_fraud


def test_review_export_overrules_generated_labels(fraud_data, tmp_path):
    """A closed review case (as `review export-labels` writes it) flips the training label."""
    txs, _ = read_transactions(fraud_data.transactions)
    flipped = txs[100].transaction_id
    review = tmp_path / "review-labels.jsonl"
    line = {"transaction_id": flipped, "is_fraud": True, "fraud_type": "account_takeover"}
    review.write_text(json.dumps(line) + "\n")
    ds = load_dataset(fraud_data.transactions, [fraud_data.labels, review], progress=False)
    assert ds.y[100] and ds.fraud_types[100] == "account_takeover"


def test_wrong_schema_names_line_and_field(tmp_path):
    bad = tmp_path / "tx.jsonl"
    good = {"transaction_id": "t1", "timestamp": "2026-03-02T00:01:16Z", "account_id": "A", "card_id": "C",
            "amount": 3.5, "currency": "GBP", "merchant_id": "M", "merchant_category": "5411",
            "channel": "ecommerce", "country": "GB", "lat": None, "lon": None, "device_id": "D", "ip": None}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "transaction_id": "t2", "amount": -1}) + "\n")
    with pytest.raises(SchemaError) as err:
        read_transactions(bad)
    assert str(err.value).startswith(f"{bad} line 2: field 'amount'")


def test_thresholds_follow_the_alert_budget():
    rng = np.random.default_rng(0)
    p = rng.random(10_000)
    y = p > 0.995
    t = choose_thresholds(p, y, 0.01)
    assert np.mean(p >= t["review"]) == pytest.approx(0.01, abs=1e-3)
    assert t["grey_low"] < t["review"] <= t["grey_high"] <= t["decline"]


def test_analyst_labels_override_and_record_what_flipped(fraud_data, tmp_path):
    """--extra-labels (a review export) wins over the generator's labels; the overlay says which flipped."""
    txs, _ = read_transactions(fraud_data.transactions)
    generated = read_labels(fraud_data.labels)
    fraud_id = next(tx.transaction_id for tx in txs if generated[tx.transaction_id].is_fraud)
    genuine_id = next(tx.transaction_id for tx in txs[50:] if not generated[tx.transaction_id].is_fraud)
    export = tmp_path / "labels.jsonl"
    export.write_text("".join(json.dumps(line) + "\n" for line in (
        {"transaction_id": fraud_id, "is_fraud": False, "fraud_type": None},
        {"transaction_id": genuine_id, "is_fraud": True, "fraud_type": "other"},
        {"transaction_id": "not-in-the-data", "is_fraud": True, "fraud_type": "cloned_card"},
    )))
    before = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False, analyst_files=[export])
    assert before.analyst is None
    assert ds.analyst.model_dump() == {"files": [str(export)], "labels": 3, "applied": 2, "unmatched": 1,
                                       "to_fraud": [genuine_id], "to_genuine": [fraud_id], "retyped": []}
    row = {tx.transaction_id: i for i, tx in enumerate(ds.transactions)}
    assert not ds.y[row[fraud_id]] and ds.y[row[genuine_id]] and ds.fraud_types[row[genuine_id]] == "other"
    assert int(ds.y.sum()) == int(before.y.sum())  # one flipped each way
    assert int((ds.y != before.y).sum()) == 2


def test_label_outside_the_vocabulary_is_refused_with_its_line(tmp_path):
    """The review app's old fraud types (stolen_card...) were classes no model learned: refused."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"transaction_id": "t1", "is_fraud": true, "fraud_type": "card_testing"}\n'
                      '{"transaction_id": "t2", "is_fraud": true, "fraud_type": "stolen_card"}\n')
    with pytest.raises(SchemaError) as err:
        read_labels(labels)
    assert str(err.value).startswith(f"{labels} line 2: field 'fraud_type': unknown fraud type 'stolen_card'")
