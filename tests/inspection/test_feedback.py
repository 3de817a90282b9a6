"""QC decisions back into inspection training (issue 13): NG cases decided in the review app, exported by
``review export-labels``, change ``inspection train``'s inputs: overruled false rejects join the good
images, confirmed defects are held back and the nets evaluated on them.  A tiny, few-step training run;
what is asserted is the training inputs (counts, file lists), not model quality."""

from __future__ import annotations

import base64
import json

import pytest

from npusuite.inspection.generate import DEFECTS, GenerateConfig, generate
from npusuite.inspection.train import TrainConfig, train
from npusuite.platform.cli import main
from npusuite.platform.contracts.labels import DefectKind
from npusuite.platform.errors import UserError
from npusuite.review import cases
from npusuite.review.accounts import SessionInfo, create_user
from npusuite.review.config import ReviewConfig, sqlite_url
from npusuite.review.db import make_engine, migrate, session_factory
from npusuite.review.export import export_labels
from npusuite.review.ingest import ingest_inspection, parse_inspection

TINY = TrainConfig(teacher_steps=2, student_steps=2, batch_size=2, min_holdout=4, teacher_widths=(8, 8, 8),
                   student_widths=(4, 4, 4), progress=False)


def _ng_record(rec_id: str, png: bytes, product: str) -> dict:
    return {"id": rec_id, "timestamp": "2026-03-02T12:00:00Z", "line": "line-1", "product": product,
            "image_png_b64": base64.b64encode(png).decode(), "heatmap_png_b64": None, "score": 0.9,
            "threshold": 0.5, "defective": True, "boxes": [[2, 2, 8, 8]], "model": "washer-student@1"}


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """A tiny washer data set, and the export of 5 QC decisions on it (one for another product)."""
    base = tmp_path_factory.mktemp("feedback")
    generate(base / "data", GenerateConfig(size_px=32, train_good=12, test_good=3, test_per_defect=1, seed=4),
             ("washer",))
    washer = base / "data" / "washer"
    url = sqlite_url(base / "review.db")
    engine = make_engine(url)
    migrate(engine)
    cfg = ReviewConfig(db_url=url)
    decisions = [("ng-good-0", washer / "test/good/000.png", "washer", "false_reject", None),
                 ("ng-good-1", washer / "test/good/001.png", "washer", "false_reject", None),
                 ("ng-missing", washer / "test/missing/000.png", "washer", "confirm_defect", "missing"),
                 ("ng-dent", washer / "test/dent/000.png", "washer", "confirm_defect", "dent"),
                 ("ng-fabric", washer / "test/good/002.png", "fabric", "false_reject", None)]
    with session_factory(engine)() as s:
        user = create_user(s, "qc", "qc-password-1", "analyst")
        me = SessionInfo.of(user, "csrf")
        for rec_id, png, product, action, kind in decisions:
            case_id = ingest_inspection(s, parse_inspection(_ng_record(rec_id, png.read_bytes(), product)), "t",
                                        cfg).case_id
            cases.take_case(s, case_id, me)
            cases.decide(s, case_id, me, action, "looked at the part", kind)
        export_labels(s, base / "export", progress=False)
    engine.dispose()
    return base, washer, base / "export" / "inspection" / "decisions.jsonl"


def test_generated_defect_kinds_are_the_review_vocabulary():
    assert {k for kinds in DEFECTS.values() for k in kinds} | {DefectKind.OTHER} == set(DefectKind)


def test_exported_decisions_change_the_training_inputs(loop):
    base, washer, manifest = loop
    plain = train(washer, base / "plain", TINY)
    fed = train(washer, base / "fed", TINY, feedback=manifest)
    assert "feedback" not in plain and not (base / "plain" / "feedback.json").exists()
    assert (plain["images"], fed["images"]) == (12, 14)
    report = json.loads((base / "fed" / "feedback.json").read_text())
    assert report == fed["feedback"]
    assert (report["good_added"], report["defects"], report["skipped_other_product"]) == (2, 2, 1)
    assert [p.split("/")[0] for p in report["good_files"]] == ["good", "good"]
    assert sorted(p.split("/")[1] for p in report["defect_files"]) == ["dent", "missing"]
    assert report["defect_types"] == ["dent", "missing"]
    for role in ("teacher", "student"):
        assert len(report[role]["feedback_defect_scores"]) == 2
        assert 0 <= report[role]["feedback_defects_flagged"] <= 2


@pytest.mark.parametrize(("line", "reason"), [
    ({"image": "../../../etc/passwd", "outcome": "false_reject", "product": "washer"}, "leaves the folder"),
    ({"image": "good/nope.png", "outcome": "false_reject", "product": "washer"}, "no such file"),
    ({"image": "x.png", "outcome": "confirmed_defect", "defect_type": "missing_part", "product": "washer"},
     "field 'defect_type'"),
    ({"image": "x.png", "outcome": "maybe", "product": "washer"}, "field 'outcome'"),
    ("{not json", "JSON"),
])
def test_a_bad_decision_is_refused_with_its_line_before_training(loop, tmp_path, capsys, line, reason):
    _base, washer, _manifest = loop
    bad = tmp_path / "decisions.jsonl"
    bad.write_text((line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(UserError, match=reason):
        train(washer, tmp_path / "m", TINY, feedback=bad)
    assert not (tmp_path / "m").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["inspection", "train", "--good", str(washer), "--out", str(tmp_path / "m"), "--feedback", str(bad),
              "--teacher-steps", "1", "--student-steps", "1"])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip() and " INFO " not in x]
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("npusuite: error: ")
    assert f"{bad} line 1" in err[0]
