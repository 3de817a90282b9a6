"""The inspection CLI: generate layout, train/score contract, and one-line errors on bad input."""

import hashlib
import json
from pathlib import Path

import pytest

from npusuite.inspection.generate import DEFECTS, GenerateConfig, generate
from npusuite.inspection.modelcard import read_card
from npusuite.platform.repository import ModelRepository


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """``npusuite inspection ARGS`` in this process (the real entry point, without a fresh interpreter each time)."""
    from npusuite.platform.cli import main

    def run(*args: str) -> _Result:
        capsys.readouterr()
        try:
            main(["inspection", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return _Result(code, out.out, out.err)

    return run


def test_generate_writes_the_mvtec_layout_with_a_mask_per_defect_image(tmp_path: Path):
    cfg = GenerateConfig(train_good=4, test_good=3, test_per_defect=2, seed=5)
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", cfg)
    for product, kinds in DEFECTS.items():
        root = tmp_path / "a" / product
        assert len(list((root / "train" / "good").glob("*.png"))) == 4
        assert len(list((root / "test" / "good").glob("*.png"))) == 3
        assert len(kinds) >= 3
        for kind in kinds:
            for img in (root / "test" / kind).glob("*.png"):
                assert (root / "ground_truth" / kind / f"{img.stem}_mask.png").is_file()
    digest = {d: hashlib.sha256(b"".join(p.read_bytes() for p in sorted((tmp_path / d).rglob("*.png")))).hexdigest()
              for d in ("a", "b")}
    assert digest["a"] == digest["b"]  # same seed, same images


def test_trained_model_card_is_calibrated_on_held_back_good_images(tiny_model: Path):
    for folder in (tiny_model, tiny_model / "teacher"):
        card = read_card(folder)
        scores = card.holdout_scores
        assert len(scores) >= 10
        assert sum(s >= card.threshold for s in scores) <= card.target_frr * len(scores)
    assert read_card(tiny_model).role == "student" and read_card(tiny_model / "teacher").role == "teacher"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_score_writes_one_contract_line_per_image(tiny_model: Path, small_data: Path, tmp_path: Path, precision: str,
                                                  cli):
    images = small_data / "washer" / "test"
    out = tmp_path / "scores.jsonl"
    proc = cli("score", "--model", str(tiny_model), "--images", str(images), "--out", str(out), "--precision",
               precision)
    assert proc.returncode == 0, proc.stderr[-1500:]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    expected = sorted(str(p.relative_to(images)) for p in images.rglob("*.png"))
    assert sorted(x["image"] for x in lines) == expected
    for x in lines:
        assert set(x) >= {"image", "score", "defective", "boxes", "model"}
        assert 0.0 <= x["score"] <= 1.0 and x["model"] == "washer-student@local"
        assert x["defective"] == (x["score"] >= x["threshold"]) and x["defective"] == bool(x["boxes"])


def test_score_resolves_a_repository_reference(tiny_model: Path, small_data: Path, tmp_path: Path, cli):
    root = tmp_path / "models"
    ModelRepository(root).add("washer", tiny_model)
    out = tmp_path / "s.jsonl"
    proc = cli("score", "--model", "washer@production", "--model-root", str(root), "--images",
               str(small_data / "washer" / "test" / "good"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert {json.loads(x)["model"] for x in out.read_text().splitlines()} == {"washer@1"}


@pytest.mark.parametrize("args, message", [
    (["train", "--good", "/no/such/dir", "--out", "/tmp/x"], "no such folder"),
    (["train", "--good", ".", "--out", "/tmp/x", "--target-frr", "1.5"], "--target-frr"),
    (["score", "--model", "/no/such/model", "--images", ".", "--out", "/tmp/x.jsonl"], "error"),
    (["score", "--model", ".", "--images", ".", "--out", "/tmp/x.jsonl"], "error"),
    (["run", "--source", "/no/such.avi", "--model", "/no/such/model"], "not a camera index"),
    (["generate", "--out", "/tmp/x", "--products", "socks"], "unknown product"),
    (["generate", "--out", "/tmp/x", "--products", "washer", "--defects", "fold"], "unknown defect kind"),
    (["train", "--good", ".", "--out", "/tmp/x", "--size", "102"], "--size 102 must be a positive multiple of 4"),
    (["evaluate", "--model", "/no/such/model", "--data", ".", "--out", "/tmp/x"], "error"),
    (["evaluate", "--model", ".", "--data", "/no/such/dir", "--out", "/tmp/x"], "no such folder"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, cli):
    proc = cli(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = [x for x in proc.stderr.strip().splitlines() if x.startswith("npusuite: error:")]
    assert len(err) == 1 and message in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("content", ["none", "empty", "unreadable"])
def test_train_with_a_calibration_folder_it_cannot_use_is_one_line(content: str, small_data: Path, tmp_path: Path,
                                                                   cli):
    folder = tmp_path / "cal"
    if content != "none":
        folder.mkdir()
    if content == "unreadable":
        (folder / "a.png").write_bytes(b"not a png")
    proc = cli("train", "--good", str(small_data / "washer"), "--out", str(tmp_path / "m"), "--calibration",
               str(folder), "--teacher-steps", "1", "--student-steps", "1")
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-1500:])
    err = [x for x in proc.stderr.strip().splitlines() if x.startswith("npusuite: error:")]
    expected = "a.png: not a PNG, JPEG, BMP or TIFF image" if content == "unreadable" else "--calibration"
    assert len(err) == 1 and expected in err[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m").exists()


def test_score_of_a_folder_where_nothing_is_readable_exits_2_with_a_line_per_file(tiny_model: Path, tmp_path: Path,
                                                                                  cli):
    """Issue 12 defect 10: this exited 0 with "scored 0 images" and wrote no line for the unreadable files."""
    images = tmp_path / "bad"
    images.mkdir()
    (images / "a.png").write_bytes(b"not a png")
    (images / "b.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 10)
    out = tmp_path / "s.jsonl"
    proc = cli("score", "--model", str(tiny_model), "--images", str(images), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    err = [x for x in proc.stderr.strip().splitlines() if x.startswith("npusuite: error:")]
    assert len(err) == 1 and "2 of 2 images could not be scored" in err[0], proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["image"] for x in lines] == ["a.png", "b.jpg"]
    assert all(x["skipped"] is True and x["reason"] and "score" not in x for x in lines)


def test_score_of_a_partly_bad_folder_writes_every_result_in_file_order_and_exits_2(tiny_model: Path,
                                                                                    small_data: Path,
                                                                                    tmp_path: Path, cli):
    from tests.inspection.test_images import huge_png

    good = sorted((small_data / "washer" / "test" / "good").glob("*.png"))[:3]
    images = tmp_path / "mixed"
    images.mkdir()
    for i, src in enumerate(good):
        (images / f"{i}_ok.png").write_bytes(src.read_bytes())
    (images / "1_bomb.png").write_bytes(huge_png())
    (images / "2_text.png").write_text("hello")
    out = tmp_path / "s.jsonl"
    proc = cli("score", "--model", str(tiny_model), "--images", str(images), "--out", str(out), "--batch", "2")
    assert proc.returncode == 2, proc.stderr
    assert "scored 3 images" in proc.stdout
    assert "2 of 5 images could not be scored (first: 1_bomb.png: " in proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["image"] for x in lines] == ["0_ok.png", "1_bomb.png", "1_ok.png", "2_ok.png", "2_text.png"]
    skipped = {x["image"]: x["reason"] for x in lines if x.get("skipped")}
    assert set(skipped) == {"1_bomb.png", "2_text.png"} and "20000 x 20000 px" in skipped["1_bomb.png"]
    assert all(0.0 <= x["score"] <= 1.0 for x in lines if not x.get("skipped"))


def _dead_port() -> int:
    import socket

    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_exits_2_when_no_reject_signal_ever_reached_the_plc_unless_allowed(tiny_model: Path, small_data: Path,
                                                                                tmp_path: Path, cli):
    port = _dead_port()
    # fail-safe with a 1 ms window: every part is due a reject signal, and the PLC is not there
    base = ["run", "--source", str(small_data / "washer"), "--model", str(tiny_model), "--as-fast-as-possible",
            "--max-frames", "4", "--modbus", f"127.0.0.1:{port}", "--fail-safe", "--window-ms", "1",
            "--results", str(tmp_path / "results.jsonl")]
    failed = cli(*base)
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert failed.stderr.strip().splitlines()[-1].startswith(
        "npusuite: error: no reject signal reached the line: all ")
    assert f"127.0.0.1:{port} failed" in failed.stderr and "--allow-no-plc" in failed.stderr
    allowed = cli(*base, "--allow-no-plc")
    assert allowed.returncode == 0, allowed.stderr[-2000:]


def test_plc_sim_on_a_taken_port_fails_without_ready():
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "npusuite.platform", "inspection", "plc-sim", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "READY" not in proc.stdout, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"npusuite: error: plc-sim cannot listen on 127.0.0.1:{port}: the port is in use or the address is not "
        "this host's (choose another --port/--host)")


def test_evaluate_cli_prints_the_realised_frr_beside_the_target_and_exits_2_on_unreadable_images(
        tiny_model: Path, small_data: Path, tmp_path: Path, cli):
    proc = cli("evaluate", "--model", str(tiny_model), "--data", str(small_data / "washer"), "--out",
               str(tmp_path / "e"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "false rejects" in proc.stdout and "(target 1.00%)" in proc.stdout and "mean" in proc.stdout
    bad = tmp_path / "bad" / "test"
    (bad / "good").mkdir(parents=True)
    (bad / "good" / "a.png").write_bytes(b"not an image")
    proc = cli("evaluate", "--model", str(tiny_model), "--data", str(bad.parent), "--out", str(tmp_path / "e2"))
    assert proc.returncode == 2
    assert "test/good holds no readable image" in proc.stderr
