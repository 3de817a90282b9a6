"""`npusuite fraud compare` on score files (the Kafka path is in tests/fraud/service/test_shadow_stream.py), and
`npusuite models promote --require-comparison` on the comparison it attaches.

Run in-process through the real entry point, like tests/fraud/test_cli.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from npusuite.platform.cli import main
from npusuite.platform.errors import UserError
from npusuite.platform.repository import ModelRepository
from npusuite.platform.runtime.reference_models import save_scale


@pytest.fixture(autouse=True)
def _restore_logging():
    """The in-process CLI points the root logger at this test's captured stderr; put it back afterwards, so later
    tests do not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def error_line(capsys, *args: str) -> str:
    code, _, err = run(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip() and " INFO " not in line and " WARNING " not in line]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("npusuite: error:"), lines
    return lines[0]


def models(capsys, *args: str) -> None:
    """``npusuite models ...`` through the entry point (the CLI owns logging; calling the store here would log to
    a stream an earlier in-process run captured)."""
    code, _, err = run(capsys, "models", *args)
    assert code == 0, err


def score(tid: str, p: float, model: str, review: float = 0.5, decline: float = 0.9, latency: float = 2.0) -> dict:
    decision = "decline" if p >= decline else "review" if p >= review else "approve"
    return {"transaction_id": tid, "score": p, "decision": decision, "reasons": [], "model": model,
            "latency_ms": latency}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path):
    """200 labelled transactions (20 fraud); the champion ranks fraud well, the weak challenger barely."""
    rng = np.random.default_rng(0)
    y = np.zeros(200, bool)
    y[::10] = True
    champ = np.clip(np.where(y, 0.7, 0.2) + rng.normal(0, 0.1, 200), 0, 1)
    weak = np.clip(np.where(y, 0.4, 0.35) + rng.normal(0, 0.2, 200), 0, 1)
    ids = [f"t{i}" for i in range(200)]
    write_jsonl(tmp_path / "labels.jsonl", [{"transaction_id": t, "is_fraud": bool(f)}
                                            for t, f in zip(ids, y, strict=True)])
    write_jsonl(tmp_path / "champion.jsonl", [score(t, float(p), "fraud-fast@1+fraud-llm@1" if i % 7 == 0
                                                    else "fraud-fast@1", latency=5.0)
                                              for i, (t, p) in enumerate(zip(ids, champ, strict=True))])
    write_jsonl(tmp_path / "same.jsonl", [score(t, float(p), "fraud-fast@2", latency=1.0)
                                          for t, p in zip(ids, champ, strict=True)])
    write_jsonl(tmp_path / "weak.jsonl", [score(t, float(p), "fraud-fast@2") for t, p in zip(ids, weak, strict=True)])
    return tmp_path


def compare_args(d: Path, shadow: str, *extra: str) -> list[str]:
    return ["fraud", "compare", "--scores", str(d / "champion.jsonl"), "--shadow-scores", str(d / shadow),
            "--labels", str(d / "labels.jsonl"), "--out", str(d / "cmp"), *extra]


def test_compare_reports_figures_agreement_and_png(capsys, files):
    code, out, err = run(capsys, *compare_args(files, "same.jsonl"))
    assert code == 0, err
    report = json.loads((files / "cmp" / "compare.json").read_text())
    assert json.loads(out) == report
    assert report["champion"] == "fraud-fast@1" and report["challenger"] == "fraud-fast@2"  # LLM part dropped
    assert report["transactions"] == 200 and report["fraud"] == 20
    a, b = report["champion_figures"], report["challenger_figures"]
    assert a["average_precision"] == b["average_precision"] > 0.9  # same scores, same ranking
    assert a["recall_at_budget"] == b["recall_at_budget"] == 0.1  # top 2 of 200 at 1%: 2 of 20 frauds
    assert a["latency_ms_p50"] == 5.0 and b["latency_ms_p50"] == 1.0
    assert sum(sum(row.values()) for row in report["agreement"].values()) == 200
    assert report["agreement_rate"] == 1.0 and report["passed"] is True
    png = (files / "cmp" / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_weak_challenger_fails_the_rule(capsys, files):
    code, _, err = run(capsys, *compare_args(files, "weak.jsonl", "--alert-budget", "0.1"))
    assert code == 0, err
    report = json.loads((files / "cmp" / "compare.json").read_text())
    assert report["passed"] is False and "too low" in report["reason"]
    assert report["challenger_figures"]["average_precision"] < report["champion_figures"]["average_precision"] - 0.01
    assert report["agreement_rate"] < 1.0


def test_hostile_records_are_counted_not_fatal(capsys, files):
    rows = (files / "same.jsonl").read_text().splitlines()
    write_jsonl(files / "hostile.jsonl", [*rows, "{oops", json.dumps(score("t1", 0.5, "fraud-fast@2") | {"score": 7}),
                                          "[]", json.dumps({"transaction_id": "t3"}), rows[4]])
    code, _, err = run(capsys, *compare_args(files, "hostile.jsonl"))
    assert code == 0, err
    report = json.loads((files / "cmp" / "compare.json").read_text())
    assert report["invalid_records"] == {"champion": 0, "challenger": 4}
    assert report["duplicates"] == {"champion": 0, "challenger": 1} and report["transactions"] == 200


@pytest.mark.parametrize("case, expect", [
    ("two_versions", "several versions (fraud-fast@2: 199, fraud-fast@3: 1); pick one with --challenger"),
    ("no_join", "no transaction was scored by both versions and labelled"),
    ("one_class", "all genuine"),
    ("budget", "--alert-budget"),
    ("lonely_file", "--scores and --shadow-scores go together"),
    ("empty", "challenger: no scores to compare"),
])
def test_bad_input_is_one_line(capsys, files, case, expect):
    rows = [json.loads(x) for x in (files / "same.jsonl").read_text().splitlines()]
    args = compare_args(files, "case.jsonl")
    if case == "two_versions":
        rows[3]["model"] = "fraud-fast@3"
    elif case == "no_join":
        rows = [r | {"transaction_id": "x" + r["transaction_id"]} for r in rows]
    elif case == "one_class":
        write_jsonl(files / "labels.jsonl", [{"transaction_id": r["transaction_id"], "is_fraud": False} for r in rows])
    elif case == "budget":
        args += ["--alert-budget", "0.7"]
    elif case == "lonely_file":
        args = ["fraud", "compare", "--scores", str(files / "champion.jsonl"), "--labels", str(files / "labels.jsonl"),
                "--out", str(files / "cmp")]
    elif case == "empty":
        rows = ["{}"]
    write_jsonl(files / "case.jsonl", rows)
    assert expect in error_line(capsys, *args)


def test_picking_one_version_of_several(capsys, files):
    rows = [json.loads(x) for x in (files / "same.jsonl").read_text().splitlines()]
    rows[3]["model"] = "fraud-fast@3"
    write_jsonl(files / "case.jsonl", rows)
    code, _, err = run(capsys, *compare_args(files, "case.jsonl", "--challenger", "fraud-fast@2"))
    assert code == 0, err
    report = json.loads((files / "cmp" / "compare.json").read_text())
    assert report["transactions"] == 199 and report["unmatched"]["champion_only"] == 1


def test_promote_requires_a_passed_comparison_against_the_current_champion(capsys, tmp_path, files):
    root = tmp_path / "models"
    repo = ModelRepository(root)
    for factor in (1.0, 2.0, 3.0):  # any versions will do: the gate reads the attached comparison only
        models(capsys, "add", "--root", str(root), "fraud-fast", str(save_scale(tmp_path / f"src{factor}", factor)))
    promote = ["models", "promote", "--root", str(root), "fraud-fast", "2", "--require-comparison"]
    assert "fraud-fast@2 has no comparison" in error_line(capsys, *promote)

    assert run(capsys, *compare_args(files, "weak.jsonl", "--alert-budget", "0.1", "--model-root", str(root)))[0] == 0
    assert "fraud-fast@2 failed its comparison with fraud-fast@1: AP" in error_line(capsys, *promote)
    assert repo.aliases("fraud-fast")["production"] == "1"

    assert run(capsys, *compare_args(files, "same.jsonl", "--model-root", str(root)))[0] == 0
    models(capsys, "promote", "--root", str(root), "fraud-fast", "3")  # production moved since the comparison
    assert "was compared with fraud-fast@1, but fraud-fast@production is now 3" in error_line(capsys, *promote)
    models(capsys, "rollback", "--root", str(root), "fraud-fast")
    code, out, err = run(capsys, *promote)
    assert code == 0, err
    assert "comparison with fraud-fast@1 passed" in out and "fraud-fast@production: 1 -> 2" in out
    assert repo.aliases("fraud-fast")["production"] == "2"
    assert repo.versions("fraud-fast") == ["1", "2", "3"]  # the attachment is no version


def test_hostile_comparison_documents_are_refused(capsys, tmp_path):
    root = tmp_path / "models"
    repo = ModelRepository(root)
    for factor in (1.0, 2.0):
        models(capsys, "add", "--root", str(root), "m", str(save_scale(tmp_path / f"src{factor}", factor)))
    promote = ["models", "promote", "--root", str(root), "m", "2", "--require-comparison"]
    doc = root / "m" / ".documents" / "2" / "comparison.json"
    doc.parent.mkdir(parents=True)
    for text, expect in (("{oops", "unreadable comparison document"), ("[1]", "is not a JSON object"),
                         ('{"champion": "m@1"}', "its comparison document is not valid"),
                         (json.dumps({"champion": "m@1", "challenger": "m@1", "passed": True, "rule": "r",
                                      "reason": "r", "created_at": "2026-01-01T00:00:00Z"}),
                          "its comparison is of m@1, not of this version")):
        doc.write_text(text)
        assert expect in error_line(capsys, *promote)
    assert repo.aliases("m")["production"] == "1"
    with pytest.raises(UserError, match="invalid document kind"):
        repo.attach("m", "2", "../x", {})
    with pytest.raises(UserError, match="has no version '9'"):
        repo.attach("m", "9", "comparison", {})
    with pytest.raises(UserError, match="must be a JSON object"):
        repo.attach("m", "2", "comparison", [])  # type: ignore[arg-type]
