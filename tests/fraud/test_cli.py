"""`npusuite fraud ...`: each command exits non-zero with exactly one line on bad input.

Run in-process through the real entry point (``npusuite.platform.cli.main``), so
the error path is the one a user sees, without a fresh interpreter per case.
"""

from __future__ import annotations

import json

import pytest

from npusuite.platform.cli import main

GOOD = {"transaction_id": "t1", "timestamp": "2026-03-02T00:01:16Z", "account_id": "A", "card_id": "C",
        "amount": 3.5, "currency": "GBP", "merchant_id": "M", "merchant_category": "5411",
        "channel": "ecommerce", "country": "GB", "lat": None, "lon": None, "device_id": "D", "ip": None}


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def one_line_error(capsys, *args: str) -> str:
    code, _, err = run(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip() and " INFO " not in line]
    assert code != 0, err
    assert len(lines) == 1, err
    return lines[0]


def test_training_file_with_wrong_schema_names_line_and_field(capsys, tmp_path):
    data = tmp_path / "tx.jsonl"
    rows = [GOOD, {**GOOD, "transaction_id": "t2"}, {**GOOD, "transaction_id": "t3", "merchant_category": "54"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = one_line_error(capsys, "fraud", "train", "--data", str(data), "--out", str(tmp_path / "m"))
    assert f"{data} line 3: field 'merchant_category'" in line


def test_labels_file_with_wrong_schema(capsys, tmp_path, fraud_data):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"transaction_id": "x", "is_fraud": true}\n{"transaction_id": "y", "is_fraud": "perhaps"}\n')
    line = one_line_error(capsys, "fraud", "train", "--data", str(fraud_data.transactions), "--labels", str(labels),
                          "--out", str(tmp_path / "m"))
    assert "line 2: field 'is_fraud'" in line


@pytest.mark.parametrize("args, expect", [
    (["fraud", "generate", "--out", "{tmp}/d", "--accounts", "3"], "accounts must be at least 10"),
    (["fraud", "generate", "--out", "{tmp}/d", "--fraud-rate", "0.9"], "fraud_rate"),
    (["fraud", "train", "--data", "{tmp}/missing.jsonl", "--out", "{tmp}/m"], "no such file"),
    (["fraud", "train", "--data", "{tmp}/empty.jsonl", "--out", "{tmp}/m"], "no transactions"),
    (["fraud", "train", "--data", "{tmp}/notjson.jsonl", "--out", "{tmp}/m"], "line 1: not valid JSON"),
    (["fraud", "train", "--data", "{tmp}/one.jsonl", "--out", "{tmp}/m"], "no labels"),
    (["fraud", "train", "--data", "{tmp}/one.jsonl", "--out", "{tmp}/m", "--epochs", "0"], "--epochs"),
    (["fraud", "train", "--data", "{tmp}/one.jsonl", "--out", "{tmp}/m", "--llm-base", "{tmp}"], "--llm-base"),
    (["fraud", "score", "--model", "{tmp}/nope", "--input", "{tmp}/one.jsonl", "--out", "{tmp}/s.jsonl"],
     "no such folder"),
    (["fraud", "score", "--model", "fraud-fast@9", "--model-root", "{tmp}/root", "--input", "{tmp}/one.jsonl",
      "--out", "{tmp}/s.jsonl"], "fraud-fast"),
    (["fraud", "score", "--model", "{tmp}", "--input", "{tmp}/missing.jsonl", "--out", "{tmp}/s.jsonl"],
     "no such file"),
    (["fraud", "score", "--model", "{tmp}", "--input", "{tmp}/one.jsonl", "--out", "{tmp}/s.jsonl",
      "--grey-low", "2"], "--grey-low"),
    (["fraud", "evaluate", "--scores", "{tmp}/badscores.jsonl", "--labels", "{tmp}/one.jsonl"],
     "line 1: field 'score'"),
    (["fraud", "evaluate", "--scores", "{tmp}/scores.jsonl", "--labels", "{tmp}/missing.jsonl"], "no such file"),
    (["fraud", "evaluate", "--scores", "{tmp}/scores.jsonl", "--labels", "{tmp}/otherlabels.jsonl"],
     "no scored transaction has a label"),
])
def test_every_command_fails_in_one_line(capsys, tmp_path, args, expect):
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "notjson.jsonl").write_text("{oops\n")
    (tmp_path / "one.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "root").mkdir()
    score = {"transaction_id": "t1", "score": 1.5, "decision": "review", "reasons": [], "model": "m@1",
             "latency_ms": 1.0}
    (tmp_path / "badscores.jsonl").write_text(json.dumps(score) + "\n")
    (tmp_path / "scores.jsonl").write_text(json.dumps({**score, "score": 0.5}) + "\n")
    (tmp_path / "otherlabels.jsonl").write_text('{"transaction_id": "zz", "is_fraud": true}\n')
    line = one_line_error(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert line.startswith("npusuite: error:") and expect in line, line


def test_generate_evaluate_happy_path(capsys, tmp_path, fraud_model):
    code, out, err = run(capsys, "fraud", "generate", "--out", str(tmp_path / "d"), "--accounts", "60", "--days", "6",
                         "--seed", "2", "--fraud-rate", "0.02")
    assert code == 0, err
    assert "transactions" in out and (tmp_path / "d" / "labels.jsonl").is_file()
    code, _, err = run(capsys, "fraud", "score", "--model", str(fraud_model[0]), "--input",
                       str(tmp_path / "d" / "transactions.jsonl"), "--out", str(tmp_path / "s.jsonl"))
    assert code == 0, err
    line = one_line_error(capsys, "fraud", "score", "--model", str(fraud_model[0]), "--input",
                          str(tmp_path / "d" / "transactions.jsonl"), "--out", str(tmp_path / "x.jsonl"),
                          "--grey-low", "0.9", "--grey-high", "0.1")
    assert "grey_low <= grey_high" in line
    code, out, err = run(capsys, "fraud", "evaluate", "--scores", str(tmp_path / "s.jsonl"), "--labels",
                         str(tmp_path / "d" / "labels.jsonl"), "--plot", str(tmp_path / "pr.png"),
                         "--json", str(tmp_path / "report.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) >= {"average_precision", "roc_auc", "budgets", "daily_card_precision_at_100",
                           "recall_by_fraud_type"}
    assert set(report["budgets"]) == {"0.5%", "1.0%"}
    assert (tmp_path / "pr.png").read_bytes()[:4] == b"\x89PNG"
