"""export-labels: decided cases become fraud labels and folders of good / defective images."""

from __future__ import annotations

import json

from npusuite.review import cases
from npusuite.review.accounts import create_user
from npusuite.review.export import export_labels
from npusuite.review.ingest import ingest_fraud_alert, ingest_inspection, parse_fraud_alert, parse_inspection


def test_export_labels_layout(sqlite_db, mk, tmp_path):
    db = sqlite_db
    with db.sessions() as s:
        me = mk.as_session(create_user(s, "qc", "password-q", "analyst"))
        ids = {}
        for tx in ("tx-fraud", "tx-legit", "tx-open"):
            ids[tx] = ingest_fraud_alert(s, parse_fraud_alert(mk.alert(tx)), "t", db.cfg).case_id
        for rec in ("good/1", "bad-1"):
            ids[rec] = ingest_inspection(s, parse_inspection(mk.inspection(rec)), "t", db.cfg).case_id
        for key, action, kind in (("tx-fraud", "confirm_fraud", "account_takeover"), ("tx-legit", "legitimate", None),
                                  ("good/1", "false_reject", None), ("bad-1", "confirm_defect", "crack")):
            cases.take_case(s, ids[key], me)
            cases.decide(s, ids[key], me, action, "checked", kind)
        summary = export_labels(s, tmp_path / "out", progress=False)
    assert (summary.fraud_labels, summary.good_images, summary.defective_images) == (2, 1, 1)
    labels = [json.loads(line) for line in (tmp_path / "out/fraud/labels.jsonl").read_text().splitlines()]
    assert labels == [{"transaction_id": "tx-fraud", "is_fraud": True, "fraud_type": "account_takeover"},
                      {"transaction_id": "tx-legit", "is_fraud": False, "fraud_type": None}]
    good = list((tmp_path / "out/inspection/good").iterdir())
    bad = list((tmp_path / "out/inspection/defective/crack").iterdir())
    assert [p.name for p in good] == [f"{ids['good/1']}-good_1.png"]
    assert len(bad) == 1 and bad[0].read_bytes().startswith(b"\x89PNG")
    manifest = [json.loads(line) for line in (tmp_path / "out/inspection/decisions.jsonl").read_text().splitlines()]
    assert {m["outcome"] for m in manifest} == {"false_reject", "confirmed_defect"}
    assert all((tmp_path / "out/inspection" / m["image"]).exists() for m in manifest)
