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


# ---- leave-one-typology-out (npusuite.fraud.leave_out) --------------------------------------------


def _part(types: list[str]):
    import numpy as np

    from npusuite.fraud.leave_out import Part

    t = np.array(types)
    return Part([], np.zeros((len(t), 1), dtype=np.float32), t != "", t)


def test_measure_counts_the_left_out_typology_within_the_budget():
    import numpy as np

    from npusuite.fraud.leave_out import measure

    types = [""] * 200
    types[:2], types[2:4] = ["app_scam"] * 2, ["cloned_card"] * 2
    # Budget 1% of 200 = 2 alerts: one app_scam and one cloned_card make it, the others rank last.
    p = np.linspace(0.5, 0.0, 200)
    p[0], p[2], p[1], p[3] = 0.99, 0.98, 0.0, 0.0
    out = measure(p, _part(types), "app_scam", 0.01)
    assert out["left_out_recall_at_budget"] == 0.5 and out["left_out_test_fraud"] == 2
    assert out["recall_at_budget"] == 0.5 and out["recall_by_type_at_budget"] == {"app_scam": 0.5, "cloned_card": 0.5}
    assert 0 < out["average_precision"] < 1


def test_split_removes_the_left_out_fraud_from_training_only(fraud_data):
    from datetime import timedelta

    from npusuite.fraud.datasets import read_labels, read_transactions
    from npusuite.fraud.leave_out import NONE, split

    txs, _ = read_transactions(fraud_data.transactions)
    labels = read_labels(fraud_data.labels)
    until = txs[0].timestamp + timedelta(days=14)
    train, test = split(txs, labels, until, "atm_cashout")
    everything, _ = split(txs, labels, until, NONE)
    assert all(tx.timestamp < until for tx in train.transactions) and all(tx.timestamp >= until
                                                                         for tx in test.transactions)
    assert "atm_cashout" not in set(train.types) and "atm_cashout" in set(everything.types)
    assert len(everything.y) - len(train.y) == int((everything.types == "atm_cashout").sum())  # removed, not relabelled
    assert len(test.y) == sum(tx.timestamp >= until for tx in txs)
    assert train.x.shape == (len(train.y), everything.x.shape[1])


def test_leave_out_cli_reports_left_out_recall_beside_ap(capsys, tmp_path, fraud_data):
    import json

    from npusuite.platform.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as info:
            main(list(args))
        return int(info.value.code or 0), capsys.readouterr()

    code, out = run("fraud", "evaluate", "--leave-out", "app_scam", "--data", str(fraud_data.transactions),
                    "--labels", str(fraud_data.labels), "--epochs", "2", "--json", str(tmp_path / "loo.json"))
    assert code == 0, out.err
    report = json.loads((tmp_path / "loo.json").read_text())
    (method, row), = report["results"]["app_scam"].items()
    assert report["sizes"]["app_scam"]["left_out_in_test"] == row["left_out_test_fraud"] > 0
    assert 0.0 <= row["left_out_recall_at_budget"] <= 1.0 and 0.0 < row["average_precision"] <= 1.0
    assert report["mean_left_out_recall"][method] == row["left_out_recall_at_budget"]
    code, out = run("fraud", "evaluate", "--leave-out", "app_scam", "--data", str(fraud_data.transactions),
                    "--labels", str(fraud_data.labels), "--epochs", "2", "--with-novelty")
    assert code == 0, out.err
    both = json.loads(out.out)["results"]["app_scam"]
    assert list(both) == ["fast model", "fast model + novelty"]
    assert 0.0 <= both["fast model + novelty"]["left_out_recall_at_budget"] <= 1.0
    code, out = run("fraud", "evaluate", "--leave-out", "phishing", "--data", str(fraud_data.transactions),
                    "--labels", str(fraud_data.labels))
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "unknown fraud type 'phishing'" in lines[0], out.err


def test_a_fold_replays_only_the_accounts_it_changes_with_the_rows_a_full_replay_gives(fraud_data):
    from datetime import timedelta

    import numpy as np

    from npusuite.fraud.datasets import read_labels, read_transactions
    from npusuite.fraud.leave_out import NONE, split

    txs, _ = read_transactions(fraud_data.transactions)
    labels = read_labels(fraud_data.labels)
    until = txs[0].timestamp + timedelta(days=14)
    everything = split(txs, labels, until, NONE)
    changed = []
    for typology in sorted({lab.fraud_type for lab in labels.values() if lab.is_fraud}):
        full = split(txs, labels, until, typology)
        fast = split(txs, labels, until, typology, everything)
        for a, b in zip(full, fast, strict=True):
            assert [tx.transaction_id for tx in a.transactions] == [tx.transaction_id for tx in b.transactions]
            assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.types, b.types)
        changed.append(not np.array_equal(full[1].x, everything[1].x))  # the removal shows in later test rows
    assert any(changed)  # some fold did replay accounts again: the equality above compared something
