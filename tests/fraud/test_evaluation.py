"""Evaluation metrics on hand-built scores, where the right answers are known."""

from __future__ import annotations

import pytest

from npusuite.fraud.evaluation import evaluate
from npusuite.fraud.schema import Label
from npusuite.platform.errors import UserError


def _rows(n: int, fraud_at: set[int], scores) -> tuple[list[dict], dict[str, Label]]:
    rows, labels = [], {}
    for i in range(n):
        rows.append({"transaction_id": f"t{i}", "score": scores(i), "decision": "review" if scores(i) > 0.5 else
                     "approve", "reasons": [], "model": "m@1", "latency_ms": 1.0, "card_id": f"C{i % 250}",
                     "timestamp": f"2026-03-0{1 + i // 500}T10:00:00Z"})
        labels[f"t{i}"] = Label(transaction_id=f"t{i}", is_fraud=i in fraud_at,
                                fraud_type=("card_testing" if i % 2 else "cloned_card") if i in fraud_at else None)
    return rows, labels


def test_perfect_ranking():
    fraud = {3, 400, 777}
    rows, labels = _rows(1000, fraud, lambda i: 0.9 if i in fraud else 0.1 * (i % 5) / 5)
    report = evaluate(rows, labels)
    assert report["average_precision"] == 1.0 and report["roc_auc"] == 1.0
    assert report["budgets"]["0.5%"] == {"alerts": 5, "recall": 1.0, "precision": 0.6}
    assert report["budgets"]["1.0%"]["alerts"] == 10
    assert report["recall_by_fraud_type"]["card_testing"]["recall_at_1.0%"] == 1.0
    assert report["decisions"] == {"alerts": 3, "recall": 1.0, "precision": 1.0}
    # day 1: fraud cards C3 (t3); day 2: t777 -> C27 and t400 is day 1 -> C150: 2 on day 1, 1 on day 2
    assert report["daily_card_precision_at_100"] == pytest.approx((2 / 100 + 1 / 100) / 2)


def test_budget_counts_misses():
    fraud = set(range(0, 1000, 50))  # 20 frauds, the model ranks only half of them on top
    rows, labels = _rows(1000, fraud, lambda i: 0.99 if i in fraud and i % 100 == 0 else 0.5 + (i % 7) / 100)
    report = evaluate(rows, labels)
    assert report["budgets"]["1.0%"]["recall"] == 0.5
    assert report["budgets"]["1.0%"]["precision"] == 1.0


def test_refuses_one_class_or_no_labels():
    rows, labels = _rows(20, set(), lambda i: 0.1)
    with pytest.raises(UserError):
        evaluate(rows, labels)
    with pytest.raises(UserError):
        evaluate(rows, {})
