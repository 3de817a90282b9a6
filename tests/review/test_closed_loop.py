"""The closed loop from analyst decisions back to fraud training (issue 13), with the real parts.

A model trained on the generator's labels scores the stream; alerts for chosen transactions are built by
the scorer's own alert builder from its scores and produced to a real ``fraud-alerts`` topic; the review
app's consumer makes cases; analysts decide them over HTTP (some generated frauds marked legitimate, some
genuine transactions confirmed as fraud, one fraud retyped); ``npusuite review export-labels`` writes the
labels; ``npusuite fraud train --extra-labels`` trains on them; the new version becomes ``challenger``.
What is asserted is the training set (the model card's counts and flipped transactions), not model quality.

The alerted transactions are chosen, not left to the model's decisions, so the test knows which labels
flip; their scores, reasons and evidence are the scorer's own.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from kafka import KafkaProducer

from npusuite.fraud.bundle import load_scorer
from npusuite.fraud.datasets import read_labels, read_transactions
from npusuite.fraud.generator import GeneratorConfig, write
from npusuite.fraud.replay import replay
from npusuite.fraud.service.messages import alert_value
from npusuite.platform.cli import main
from npusuite.platform.contracts.labels import ReasonCode
from npusuite.platform.repository import ModelRepository
from npusuite.review.consumer import AlertConsumer, wait_until

pytestmark = pytest.mark.kafka


def _cli(capsys, *args: object) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    assert (exit_info.value.code or 0) == 0, captured.err
    return captured.out


def test_analyst_decisions_flip_the_next_training_set(kafka_bootstrap, topic_name, sqlite_db, mk, tmp_path,
                                                      capsys):
    data, root = tmp_path / "data", tmp_path / "models"
    write(data, GeneratorConfig(accounts=100, days=8, seed=21, fraud_rate=0.02), progress=False)
    tx_file, label_file = data / "transactions.jsonl", data / "labels.jsonl"
    _cli(capsys, "fraud", "train", "--data", tx_file, "--labels", label_file, "--out", tmp_path / "m1",
         "--model-root", root, "--no-llm", "--epochs", "2", "--promote")

    # The production model scores the stream; alerts for the chosen transactions go to fraud-alerts.
    txs, _ = read_transactions(tx_file)
    generated = read_labels(label_file)
    results = replay(load_scorer(str(tmp_path / "m1"), with_llm=False), txs)
    frauds = [i for i, tx in enumerate(txs) if generated[tx.transaction_id].is_fraud]
    genuine = [i for i, tx in enumerate(txs) if i > len(txs) // 2 and not generated[tx.transaction_id].is_fraud]
    plan = {}  # transaction_id -> (action, type)
    for i in frauds[:3]:
        plan[txs[i].transaction_id] = ("legitimate", None)
    for i, kind in zip(genuine[:3], ("account_takeover", "other", "card_testing"), strict=True):
        plan[txs[i].transaction_id] = ("confirm_fraud", kind)
    same, other = txs[frauds[3]].transaction_id, txs[frauds[4]].transaction_id
    plan[same] = ("confirm_fraud", generated[same].fraud_type)
    new_type = "atm_cashout" if generated[other].fraud_type != "atm_cashout" else "cloned_card"
    plan[other] = ("confirm_fraud", new_type)

    recent: dict[str, list[bytes]] = defaultdict(list)
    messages, sent_codes = [], {}
    for tx, res in zip(txs, results, strict=True):
        raw = json.dumps(tx.to_json_dict()).encode()
        if tx.transaction_id in plan:
            value = alert_value(res.fields, tx, recent[tx.account_id][-20:], res.features.as_dict(),
                                res.llm_rationale)
            messages.append((tx.account_id.encode(), value))
            sent_codes[tx.transaction_id] = json.loads(value)["reason_codes"]
        recent[tx.account_id].append(raw)
    assert len(messages) == len(plan) == 8
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for key, value in messages:
        producer.send(topic_name, key=key, value=value)
    producer.flush(timeout=60)
    producer.close()

    consumer = AlertConsumer(kafka_bootstrap, sqlite_db.sessions, sqlite_db.cfg, topic=topic_name,
                             group_id=f"g-{topic_name}")
    server, live = mk.start_live(sqlite_db, consumer)
    with server:
        assert wait_until(lambda: consumer.stats.created == len(plan), timeout_s=90), vars(consumer.stats)
        alice = mk.login(live, "alice")
        for _ in plan:
            case = alice.post("/api/cases/next", json={"kind": "fraud"}).json()["case"]
            # The scorer's reason codes arrived with its phrases and were stored with them.
            assert case["reason_codes"] == sent_codes[case["external_id"]]
            assert case["reason_codes"] and set(case["reason_codes"]) <= {c.value for c in ReasonCode}
            action, kind = plan[case["external_id"]]
            done = alice.post(f"/api/cases/{case['id']}/decide",
                              json={"action": action, "comment": "checked with the cardholder", "type": kind})
            assert done.status_code == 200, done.text
        assert alice.post("/api/cases/next", json={"kind": "fraud"}).json()["case"] is None

    _cli(capsys, "review", "export-labels", "--db", sqlite_db.url, "--out", tmp_path / "export")
    export = tmp_path / "export" / "fraud" / "labels.jsonl"
    exported = {r["transaction_id"]: r for r in map(json.loads, export.read_text().splitlines())}
    assert {k: (r["is_fraud"], r["fraud_type"]) for k, r in exported.items()} == {
        k: (action == "confirm_fraud", kind) for k, (action, kind) in plan.items()}

    out = json.loads(_cli(capsys, "fraud", "train", "--data", tx_file, "--labels", label_file, "--extra-labels",
                          export, "--out", tmp_path / "m2", "--model-root", root, "--no-llm", "--epochs", "2"))
    assert out["fast"] == "fraud-fast@2"
    card = json.loads((tmp_path / "m2" / "card.json").read_text())
    before = json.loads((tmp_path / "m1" / "card.json").read_text())
    analyst = card["data"]["analyst_labels"]
    assert analyst == {"files": [str(export)], "labels": 8, "applied": 8, "unmatched": 0,
                       "to_fraud": sorted(txs[i].transaction_id for i in genuine[:3]),
                       "to_genuine": sorted(txs[i].transaction_id for i in frauds[:3]),
                       "retyped": [other]}
    assert before["data"]["analyst_labels"] is None
    assert card["data"]["fraud"] == before["data"]["fraud"]  # three flipped each way
    assert card["data"]["fraud_by_type"]["other"] == 1 and "other" not in before["data"]["fraud_by_type"]
    assert sum(card["data"]["fraud_by_type"].values()) == card["data"]["fraud"]

    _cli(capsys, "models", "promote", "fraud-fast", "2", "--root", root, "--alias", "challenger")
    repo = ModelRepository(root)
    assert repo.resolve("fraud-fast", "challenger").version == "2"
    assert repo.resolve("fraud-fast", "production").version == "1"
    meta = repo.resolve("fraud-fast", "challenger").manifest.metadata["model_card"]
    assert meta["data"]["analyst_labels"]["to_genuine"] == analyst["to_genuine"]
