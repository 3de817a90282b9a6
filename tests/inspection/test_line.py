"""The live line end to end: the CLI with a real PLC process, and hot swap through the platform engine."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npusuite.inspection.line import EngineInspectors, InspectionLine, LineConfig
from npusuite.inspection.source import FrameSource, SourceConfig
from npusuite.inspection.video import write_line_video
from npusuite.platform.repository import ModelRepository


def test_run_signals_every_ng_part_on_the_plc_coil_within_its_window(tiny_model: Path, plc, tmp_path: Path):
    clip = tmp_path / "line.avi"
    write_line_video(clip, "washer", frames=60, fps=20.0, defect_rate=0.3, seed=3)
    results, archive = tmp_path / "results.jsonl", tmp_path / "ng"
    window_ms = 3000
    proc = subprocess.run(
        [sys.executable, "-m", "npusuite.platform", "inspection", "run", "--source", str(clip), "--model",
         str(tiny_model), "--modbus", f"127.0.0.1:{plc.port}", "--coil", "3", "--pulse-ms", "0",
         "--window-ms", str(window_ms), "--archive", str(archive), "--archive-max-records", "4",
         "--results", str(results), "--queue-size", "64"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(60))  # queue large enough: nothing dropped
    ng = [r for r in lines if r["defective"]]
    assert ng, "the tiny model flagged nothing; the test would prove nothing"
    assert all(r["boxes"] for r in ng) and not any(r["boxes"] for r in lines if not r["defective"])
    time.sleep(0.5)
    sets = [w for w in plc.writes() if w["value"]]
    assert len(sets) == len(ng) and all(w["address"] == 3 for w in sets)
    from datetime import datetime

    for r, w in zip(ng, sets, strict=True):
        captured = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
        assert captured <= w["t"] <= captured + window_ms / 1000.0
    records = sorted(p for p in archive.iterdir() if p.is_dir())
    assert len(records) == min(4, len(ng))  # bounded retention keeps the newest
    assert {f.name for f in records[-1].iterdir()} == {"image.png", "heatmap.png", "record.json"}
    newest = json.loads((records[-1] / "record.json").read_text())
    assert newest["seq"] == ng[-1]["seq"] and newest["defective"]
    summary = json.loads(proc.stderr.strip().splitlines()[-1])["summary"]
    assert summary["reject"]["rejects_ng"] == len(ng) and summary["source"]["frames_dropped"] == 0


def test_hot_swap_while_frames_flow_loses_no_frame(tiny_model: Path, small_data: Path, tmp_path: Path):
    repo = ModelRepository(tmp_path / "models")
    repo.add("washer", tiny_model)
    repo.add("washer", tiny_model)  # version 2 (same weights: this test is about the swap, not the scores)
    inspectors = EngineInspectors.open("washer", tmp_path / "models")
    assert inspectors.ref == "washer@1"
    seen = []
    promoted = []

    def sink(result) -> None:
        seen.append((result.frame.seq, result.model))
        if len(seen) == 10:
            repo.promote("washer", "2")
            promoted.append(time.monotonic())
        time.sleep(0.05)  # a line slower than the alias poll, so the swap lands mid-stream

    source = FrameSource(SourceConfig(str(small_data / "washer"), queue_size=4))
    line = InspectionLine(source, inspectors, LineConfig(max_batch=2), sink=sink)
    with source:
        stats = line.run()
    inspectors.close()
    n = source.stats().frames_read
    assert [s for s, _ in seen] == list(range(n))  # every frame exactly once, in order
    models = [m for _, m in seen]
    assert models[0] == "washer@1" and models[-1] == "washer@2"
    switch = models.index("washer@2")
    assert set(models[:switch]) == {"washer@1"} and set(models[switch:]) == {"washer@2"}
    assert stats.errors == 0 and stats.frames == n


def test_a_promoted_version_that_cannot_inspect_is_refused_and_fail_safe_rejects_no_part(
        tiny_model: Path, small_data: Path, tmp_path: Path):
    """Issue 13 (b): ``inspection run --fail-safe`` follows ``washer@production``; a version whose card asks
    for an input size the net cannot take (not a multiple of its down-sampling) is promoted mid-run.  The
    engine refuses it before the switch: every frame still gets a verdict from version 1 and fail-safe
    rejects nothing."""
    import shutil

    repo = ModelRepository(tmp_path / "models")
    repo.add("washer", tiny_model)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model, bad)
    (bad / "manifest.json").unlink(missing_ok=True)
    card = json.loads((bad / "inspection.json").read_text())
    card["size_px"] = [card["size_px"][0] - 2, card["size_px"][1] - 2]
    (bad / "inspection.json").write_text(json.dumps(card))  # the net and its declared tensors are unchanged
    repo.add("washer", bad)
    clip = tmp_path / "line.avi"
    write_line_video(clip, "washer", frames=80, fps=20.0, defect_rate=0.3, seed=5)  # 4 s, paced like a camera
    results, log = tmp_path / "results.jsonl", tmp_path / "line.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "npusuite.platform", "inspection", "run", "--source", str(clip), "--model",
             "washer", "--model-root", str(tmp_path / "models"), "--fail-safe", "--window-ms", "3000",
             "--results", str(results), "--queue-size", "64"], stderr=err, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not (results.is_file() and results.read_text().count("\n") >= 5):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            repo.promote("washer", "2")
            assert proc.wait(180) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(80)) and {r["model"] for r in lines} == {"washer@1"}
    summary = json.loads(text.strip().splitlines()[-1])["summary"]
    assert summary["errors"] == 0 and summary["reject"]["rejects_failsafe"] == 0
    assert summary["reject"]["rejects_ng"] == sum(r["defective"] for r in lines)
    assert "washer@production -> 2 refused" in text, text[-3000:]  # the refusal happened while frames flowed


def _shadow_repo(tiny_model: Path, root: Path) -> ModelRepository:
    """washer@1 = the student (production), washer@2 = the teacher (another net and threshold) as challenger."""
    repo = ModelRepository(root)
    repo.add("washer", tiny_model)
    repo.add("washer", tiny_model / "teacher")
    repo.promote("washer", "2", "challenger")
    return repo


def _verdicts(folder: Path, inspectors: EngineInspectors, shadow=None) -> list[tuple[int, str, bool, float]]:
    seen = []
    source = FrameSource(SourceConfig(str(folder), queue_size=64))
    line = InspectionLine(source, inspectors, LineConfig(max_batch=3),
                          sink=lambda r: seen.append((r.frame.seq, r.model, r.defective, r.score)), shadow=shadow)
    with source:
        line.run()
    return seen


def test_shadow_inspects_with_the_challenger_and_changes_no_verdict(tiny_model: Path, small_data: Path,
                                                                    tmp_path: Path):
    from npusuite.inspection.shadow import ShadowInspector

    root = tmp_path / "models"
    _shadow_repo(tiny_model, root)
    alone = EngineInspectors.open("washer", root)
    paired = EngineInspectors.open("washer", root)
    shadow = ShadowInspector.open("challenger", paired.engine, root)
    try:
        plain = _verdicts(small_data / "washer", alone)
        shadowed = _verdicts(small_data / "washer", paired, shadow)
    finally:
        for closing in (alone, paired, shadow):
            closing.close()
    # The champion's verdicts, unchanged.  Scores are compared to float32 precision: the source's
    # batches (up to 3 frames) can form differently between two runs, and a conv net's sums differ
    # in their last bits with the batch shape.
    assert [(s, m, d) for s, m, d, _ in shadowed] == [(s, m, d) for s, m, d, _ in plain]
    assert [x for *_, x in shadowed] == pytest.approx([x for *_, x in plain], rel=1e-5)
    assert {m for _, m, _, _ in plain} == {"washer@1"}
    report = shadow.agreement.summary()
    assert report["frames"] == len(plain) and report["errors"] == 0
    assert sum(report["confusion"].values()) == len(plain)
    assert report["confusion"]["both_ng"] + report["confusion"]["champion_only_ng"] == sum(d for *_, d, _ in plain)
    assert report["challengers"] == {"washer@2": len(plain)} and report["champions"] == {"washer@1": len(plain)}
    assert report["mean_abs_relative_score_diff"] > 0  # another net: the scores differ


def test_inspection_run_shadow_writes_the_agreement_report(tiny_model: Path, small_data: Path, tmp_path: Path):
    root = tmp_path / "models"
    _shadow_repo(tiny_model, root)
    results, report = tmp_path / "results.jsonl", tmp_path / "shadow.json"
    base = [sys.executable, "-m", "npusuite.platform", "inspection", "run", "--source", str(small_data / "washer"),
            "--model", "washer", "--model-root", str(root), "--as-fast-as-possible", "--queue-size", "64"]
    proc = subprocess.run([*base, "--results", str(results), "--shadow", "challenger", "--shadow-report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    agreement = json.loads(report.read_text())
    assert agreement == json.loads(proc.stderr.strip().splitlines()[-1])["summary"]["shadow"]
    assert agreement["frames"] == len(lines) > 0 and {r["model"] for r in lines} == {"washer@1"}
    for args, expect in ((["--shadow-report", str(report)], "--shadow-report needs --shadow"),
                         (["--shadow", "nope"], "no version or alias 'nope'")):
        bad = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)
        errors = [x for x in bad.stderr.splitlines() if x.startswith("npusuite: error:")]
        assert bad.returncode == 2 and len(errors) == 1 and expect in errors[0], bad.stderr[-2000:]
