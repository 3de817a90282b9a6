"""inspection export: ONNX student/teacher with dynamic batch and torch parity, the int8 rule, the atc recipe
(checked without the CANN tool), and refusals."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npusuite.inspection.export import INT8_FILE, INT8_OPTIMIZATION, ExportConfig, export, quantize_int8
from npusuite.platform.errors import UserError


@pytest.fixture(scope="module")
def exported(tiny_model: Path, small_data: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("export") / "washer-onnx"
    report = export(tiny_model, out, ExportConfig(format="om", teacher=True, images=small_data / "washer" / "test"))
    return out, report.model_dump()


def test_student_and_teacher_export_with_the_same_verdicts_as_torch(exported, small_data):
    out, report = exported
    n_test = len(list((small_data / "washer" / "test").rglob("*.png")))
    for role, folder in (("student", out), ("teacher", out / "teacher")):
        parity = report[role]["parity"]
        assert parity["images"] == n_test
        assert parity["same_verdicts"] == n_test and not parity["mismatches"], parity
        assert parity["max_heat_diff"] < 1e-4
        assert (folder / "model.onnx").is_file() and (folder / "inspection.json").is_file()
    saved = json.loads((out / "export.json").read_text())
    assert saved["student"]["parity"] == report["student"]["parity"]


def test_the_exported_graph_has_a_dynamic_batch_and_runs_through_the_platform(exported, tiny_model):
    import onnx

    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.modelcard import LoadedModel, read_card
    from npusuite.platform.repository import resolve_reference
    from npusuite.platform.runtime.onnx_runtime import OnnxModule
    from npusuite.platform.runtime.servable import load_version

    out, _ = exported
    graph = onnx.load(str(out / "model.onnx")).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    version = resolve_reference(out)
    assert version.manifest.kind == "onnx"
    runtime = load_version(version, "cpu")
    x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    assert runtime.predict({"image": x})["logits"].shape == (3, 1, 64, 64)
    assert isinstance(runtime.module, OnnxModule)
    card = read_card(out)
    assert card == read_card(tiny_model)  # the card travels unchanged: same threshold, smoothing, size
    inspector = Inspector(LoadedModel(runtime.module, card, "x@1", out, "fp32"))
    result = inspector.inspect_batch([_frame(x[0])])[0]
    assert 0.0 <= result.score <= 1.0 and result.heatmap.shape == (64, 64)


def test_the_scoring_head_is_in_the_graph_and_the_onnx_path_needs_no_torch(exported, tiny_model):
    """heatmap and score come out of ONE ORT call and equal the torch policy (scoring.heatmaps/image_scores);
    the inspector takes the numpy path for such a graph and the torch path for a logits-only graph."""
    import onnx
    import torch

    from npusuite.inspection.export import add_heatmap_head
    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.modelcard import LoadedModel, load, read_card
    from npusuite.inspection.scoring import heatmaps, image_scores
    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    out, _ = exported
    model = onnx.load(str(out / "model.onnx"))
    assert [o.name for o in model.graph.output] == ["logits", "heatmap", "score"]
    assert {p.key: p.value for p in model.metadata_props}["npusuite.smooth_px"] == str(read_card(out).smooth_px)
    net = OnnxModule(out / "model.onnx", get_device("cpu"), 1)
    x = np.random.default_rng(1).random((2, 3, 64, 64), dtype=np.float32)
    logits, heat, score = net.outputs(x, ["logits", "heatmap", "score"])
    ref = heatmaps(torch.from_numpy(logits), read_card(out).smooth_px)
    assert np.abs(heat - ref.numpy()).max() < 1e-6 and np.abs(score - image_scores(ref).numpy()).max() < 1e-6
    with torch.inference_mode():
        torch_heat = heatmaps(load(tiny_model).net(torch.from_numpy(x)), read_card(out).smooth_px).numpy()
    assert np.abs(heat - torch_heat).max() < 1e-4
    card = read_card(out)
    fused = Inspector(LoadedModel(net, card, "x", out, "fp32"))
    assert fused.fused
    with pytest.raises(ValueError, match="heatmap"):  # a graph is headed once
        add_heatmap_head(out / "model.onnx", 3)
    # an older export (logits only): the torch path, the same results
    plain = out.parent / "logits-only.onnx"
    onnx.save(onnx.utils.Extractor(model).extract_model(["image"], ["logits"]), str(plain))
    older = Inspector(LoadedModel(OnnxModule(plain, get_device("cpu"), 1), card, "y", out, "fp32"))
    assert not older.fused
    frames = [_frame(c) for c in x]
    for a, b in zip(fused.inspect_batch(frames), older.inspect_batch(frames), strict=True):
        assert abs(a.score - b.score) < 1e-6 and np.abs(a.heatmap - b.heatmap).max() < 1e-6
        assert a.boxes == b.boxes and a.defective == b.defective


def test_the_onnx_inspector_runs_where_torch_is_not_installed(exported):
    """The inspector and the platform's ONNX runtime import no torch: a box with onnxruntime alone can run them
    (torch blocked in a fresh interpreter)."""
    out, _ = exported
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch fails
import numpy as np
from pathlib import Path
from npusuite.inspection.inspector import Inspector
from npusuite.inspection.modelcard import LoadedModel, read_card
from npusuite.inspection.records import Frame
from npusuite.platform.repository import resolve_reference
from npusuite.platform.runtime.servable import load_version
version = resolve_reference(Path({str(out)!r}))
inspector = Inspector(LoadedModel(load_version(version, "cpu").module, read_card(version.path), "x", version.path,
                                  "fp32"))
result = inspector.inspect(Frame(np.full((80, 70, 3), 128, np.uint8), 0.0, "t", 0))
assert inspector.fused and result.heatmap.shape == (80, 70) and 0.0 <= result.score <= 1.0
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("smooth_px", [1, 2, 5])
def test_the_head_matches_torch_for_any_smoothing(tmp_path, smooth_px):
    """Even kernels grow the map by one pixel in torch (padding k // 2); the graph does the same."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    from npusuite.inspection.export import add_heatmap_head
    from npusuite.inspection.scoring import heatmaps, image_scores
    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 9, 7])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, 9, 7])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    add_heatmap_head(path, smooth_px)
    x = np.random.default_rng(smooth_px).normal(size=(3, 1, 9, 7)).astype(np.float32) * 4
    heat, score = OnnxModule(path, get_device("cpu"), 1).outputs(x, ["heatmap", "score"])
    ref = heatmaps(torch.from_numpy(x), smooth_px)
    assert heat.shape == tuple(ref.shape)
    assert np.abs(heat - ref.numpy()).max() < 1e-6 and np.abs(score - image_scores(ref).numpy()).max() < 1e-6


def _frame(chw: np.ndarray):
    from npusuite.inspection.records import Frame

    return Frame(image=(chw.transpose(1, 2, 0) * 255).astype(np.uint8), timestamp=0.0, source="t", seq=0, name="x")


def test_the_om_recipe_is_the_exact_atc_command_for_a_310b(exported):
    """Checked as far as possible without the CANN toolkit: atc itself is not installed here and never ran."""
    out, report = exported
    atc = report["student"]["atc"]
    script = (out / "om" / "atc.sh").read_text()
    command = shlex.split(script.strip().splitlines()[-1])
    assert command == atc["command"] and command[0] == "atc"
    flags = dict(a.split("=", 1) for a in command[1:])
    assert flags["--model"] == "model.onnx" and (out / flags["--model"]).is_file()
    assert flags["--framework"] == "5"  # ONNX
    assert flags["--soc_version"] == "Ascend310B1"
    assert flags["--input_shape"] == "image:-1,3,64,64"  # the card's size, batch dynamic
    assert flags["--dynamic_batch_size"] == "1,2,4,8" and flags["--precision_mode"] == "force_fp16"
    assert atc["unchecked_ops"] == [] and "Conv" in atc["op_types"]
    assert atc["ran"] is (shutil.which("atc") is not None)
    assert json.loads((out / "om" / "atc.json").read_text())["command"] == command
    import onnx

    assert onnx.load(str(out / "model.onnx")).opset_import[0].version <= 18  # within CANN's supported opsets


def test_int8_is_kept_only_when_recall_holds(tiny_model, small_data, tmp_path):
    report = export(tiny_model, tmp_path / "q", ExportConfig(int8=True, images=small_data / "washer" / "test"))
    decision = report.student.int8
    assert decision is not None and decision.fp32.defects > 0 and decision.fp32.good > 0
    drop = abs(decision.fp32.recall - decision.int8.recall)
    assert decision.kept is (drop <= 0.005 + 1e-12)
    info = json.loads((tmp_path / "q" / "onnx.json").read_text())
    assert ((tmp_path / "q" / INT8_FILE).is_file()) is decision.kept
    assert ("int8" in info["variants"]) is decision.kept
    assert (info["optimization"].get("int8") == INT8_OPTIMIZATION) is decision.kept


def test_bf16_on_openvino_is_kept_only_when_torchs_verdicts_and_recall_hold(tiny_model, small_data, tmp_path):
    from npusuite.platform.runtime.onnx_runtime import read_info
    from npusuite.platform.runtime.openvino_session import supports

    report = export(tiny_model, tmp_path / "b", ExportConfig(bf16=True, images=small_data / "washer" / "test"))
    decision = report.student.bf16
    info = read_info(tmp_path / "b")
    if not supports("bf16"):  # a CPU without AMX/AVX512-BF16: said, not evaluated, not listed
        assert not decision.kept and "no bf16" in decision.reason and "bf16" not in info.variants
        return
    assert decision.fp32.defects > 0 and decision.parity.images == decision.fp32.defects + decision.fp32.good
    drop = abs(decision.fp32.recall - decision.bf16.recall)
    holds = decision.calibration_frr_bf16 <= decision.calibration_frr_fp32
    assert decision.kept is (not decision.parity.mismatches and holds and drop <= 0.005 + 1e-12)
    assert 0 <= decision.calibration_max_score_diff < 0.1
    assert ("bf16" in info.variants) is decision.kept
    if decision.kept:
        assert info.variants["bf16"] == "model.onnx" and info.engines["bf16"] == "openvino"
        assert not (tmp_path / "b" / INT8_FILE).exists()  # no new file: the fp32 graph at another precision
        assert 0 < decision.parity.max_heat_diff < 0.05  # bf16 really computed, and close


def test_int8_for_openvino_is_a_qdq_graph_run_by_openvino_under_the_same_rule(tiny_model, small_data, tmp_path):
    """--int8-engine openvino: QDQ pairs (OpenVINO does not read QOperator nodes), every conv quantised but the
    output conv's weights, onnx.json names OpenVINO for the int8 variant, and the platform opens it there."""
    import onnx

    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.onnx_runtime import OnnxModule, read_info
    from npusuite.platform.runtime.openvino_session import supports

    out = tmp_path / "ov"
    report = export(tiny_model, out, ExportConfig(int8=True, int8_engine="openvino",
                                                  images=small_data / "washer" / "test"))
    decision = report.student.int8
    assert decision.engine == "openvino"
    info = read_info(out)
    if not supports("int8"):
        assert not decision.kept and "no int8" in decision.reason and "int8" not in info.variants
        return
    drop = abs(decision.fp32.recall - decision.int8.recall)
    assert decision.kept is (drop <= 0.005 + 1e-12)
    calib = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    candidate = out / INT8_FILE if decision.kept else tmp_path / INT8_FILE
    if not decision.kept:  # the rule dropped it on this tiny model: the recipe is still checked
        quantize_int8(out / "model.onnx", candidate, calib, "image", engine="openvino")
    nodes = onnx.load(str(candidate)).graph.node
    ops = [n.op_type for n in nodes]
    assert "QLinearConv" not in ops and "QuantizeLinear" in ops and "DequantizeLinear" in ops
    convs = [n for n in nodes if n.op_type == "Conv"]
    dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    assert convs[-1].input[1] not in dequantized  # the output conv keeps its float weights
    assert all(set(c.input[:2]) <= dequantized for c in convs[:-1])  # every other conv is quantised
    if decision.kept:
        assert info.variants["int8"] == INT8_FILE and info.engines["int8"] == "openvino"
        assert "int8" not in info.optimization  # an ONNX Runtime setting, not OpenVINO's
        net = OnnxModule.open_variant(out, get_device("cpu"), "int8", 1)
        assert net.engine == "openvino" and net.session.get_providers() == ["OpenVINO CPU (int8)"]
        heat, score = net.outputs(calib, ["heatmap", "score"])
        assert heat.shape == (2, 64, 64) and np.allclose(score, heat.reshape(2, -1).max(axis=1))


def test_the_int8_recipe_keeps_the_first_and_last_conv_and_the_resize_in_float(exported, tmp_path):
    """The measured recipe (export rule 5): QOperator QLinearConv inside, fp32 Conv at the 3-channel input and
    the 1-channel head, Resize on float tensors; the fused scoring head is still there; it runs at EXTENDED."""
    import onnx

    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    out, _ = exported
    calib = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    quantize_int8(out / "model.onnx", tmp_path / INT8_FILE, calib, "image")
    nodes = onnx.load(str(tmp_path / INT8_FILE)).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("Conv") == 2 and ops.count("QLinearConv") >= 3 and "DequantizeLinear" in ops
    assert all(n.op_type != "QuantizeLinear" or n.output[0] not in {i for r in nodes if r.op_type == "Resize"
                                                                      for i in r.input} for n in nodes)
    assert {"heatmap", "score"} <= {o for n in nodes for o in n.output}
    net = OnnxModule(tmp_path / INT8_FILE, get_device("cpu"), 1, optimization=INT8_OPTIMIZATION)
    heat, score = net.outputs(calib, ["heatmap", "score"])
    assert heat.shape == (4, 64, 64) and np.allclose(score, heat.reshape(4, -1).max(axis=1))


def test_refusals_are_user_errors(tiny_model, tmp_path):
    with pytest.raises(UserError, match="--format"):
        ExportConfig(format="tflite")
    with pytest.raises(UserError, match="--images"):
        ExportConfig(int8=True)
    with pytest.raises(UserError, match="--images"):
        ExportConfig(bf16=True)
    with pytest.raises(UserError, match="--om-precision"):
        ExportConfig(format="om", om_precision="int4")
    with pytest.raises(UserError, match="--int8-engine"):
        ExportConfig(int8=True, images=tmp_path, int8_engine="tensorrt")
    with pytest.raises(UserError, match="add --int8"):
        ExportConfig(int8_engine="openvino")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        export(tiny_model, busy)
    assert (busy / "keep.txt").is_file()
    no_teacher = tmp_path / "student-only"
    shutil.copytree(tiny_model, no_teacher, ignore=shutil.ignore_patterns("teacher"))
    with pytest.raises(UserError, match="no teacher"):
        export(no_teacher, tmp_path / "o", ExportConfig(teacher=True))
    with pytest.raises(UserError):
        export(tmp_path / "nowhere", tmp_path / "o2")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_cli_export_and_its_one_line_errors(tiny_model, tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "npusuite.platform", "inspection", "export", *args],
                              capture_output=True, text=True, timeout=300)

    ok = cli(str(tiny_model), "--out", str(tmp_path / "o"))
    assert ok.returncode == 0, ok.stderr[-1500:]
    assert "same verdicts" in ok.stdout and (tmp_path / "o" / "model.onnx").is_file()
    bad = cli(str(tiny_model), "--out", str(tmp_path / "o2"), "--format", "tflite")
    assert bad.returncode != 0 and "--format" in bad.stderr and "Traceback" not in bad.stderr
    hostile = tmp_path / "hostile"
    shutil.copytree(tiny_model, hostile)
    (hostile / "model.safetensors").write_bytes(b"\x00" * 64)
    bad = cli(str(hostile), "--out", str(tmp_path / "o3"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and not (tmp_path / "o3").exists()


def test_score_and_evaluate_judge_the_exported_folder_itself(exported, tiny_model, small_data, tmp_path):
    """`inspection score` / `evaluate` take an exported folder: its ONNX graph runs, with torch's verdicts; the
    teacher/ beside it too; a variant the export did not keep, or bf16 on a torch folder, is refused in one line."""
    from npusuite.inspection.evaluate import evaluate_models
    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.modelcard import load
    from npusuite.inspection.samples import calibration_batch, calibration_frames
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    out, _ = exported
    onnx_student, torch_student = Inspector.load(out, threads=1), Inspector.load(tiny_model)
    assert isinstance(onnx_student.model.net, OnnxModule) and onnx_student.fused
    frames = calibration_frames(out, limit=8)
    batch = calibration_batch(out, limit=8)  # the same images as the nets' float input
    assert batch.dtype == np.float32 and batch.shape[:2] == (8, 3)
    assert np.array_equal(np.rint(batch * 255).astype(np.uint8).transpose(0, 2, 3, 1), [f.image for f in frames])
    assert [onnx_student.inspect(f).defective for f in frames] == [torch_student.inspect(f).defective for f in frames]
    report = evaluate_models([load(out), load(out / "teacher")], small_data / "washer", progress=False)
    assert [m.runtime for m in report.models] == ["onnxruntime fp32", "onnxruntime fp32"]
    assert report.models[0].mean is not None and report.models[0].mean.images > 0
    assert evaluate_models([load(tiny_model)], small_data / "washer", progress=False).models[0].runtime == "torch fp32"
    with pytest.raises(UserError, match="no int8 ONNX graph"):
        load(out, precision="int8")
    with pytest.raises(UserError, match="torch model folder"):
        load(tiny_model, precision="bf16")
    bad = subprocess.run([sys.executable, "-m", "npusuite.platform", "inspection", "score", "--model", str(out),
                          "--images", str(small_data / "washer" / "test"), "--out", str(tmp_path / "s.jsonl"),
                          "--precision", "int8"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no int8 ONNX graph" in bad.stderr and "Traceback" not in bad.stderr
