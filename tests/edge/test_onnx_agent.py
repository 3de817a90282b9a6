"""The edge agent on the trained ONNX student: signed bundle -> ONNX Runtime through the platform engine, health
check on the bundle's own calibration images, --device/--precision, and hostile bundles rolled back."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from npusuite.edge.bundles import make_bundle
from npusuite.edge.health import HealthCheck, HealthConfig
from npusuite.edge.pipeline import EngineInspectors, InspectionFactory, bundle_samples, factory_for, load_samples
from npusuite.edge.release import ReleaseRepository
from npusuite.edge.slots import SlotManager
from npusuite.edge.updates import UpdateManager, UpdateSource
from npusuite.platform.errors import UserError


def _health() -> HealthCheck:
    return HealthCheck(InspectionFactory(), bundle_samples, HealthConfig(max_p95_latency_ms=10_000))


def test_a_signed_onnx_bundle_runs_on_onnx_runtime_with_the_torch_verdicts(trained_onnx, tmp_path, serve_static):
    from npusuite.inspection.inspector import Inspector
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    repo = ReleaseRepository.init(tmp_path / "release")
    srv = serve_static(repo.dir / "repository")
    repo.add_target("models/washer-1.0.0.tgz", make_bundle(trained_onnx / "onnx", tmp_path / "w.tgz", "washer",
                                                           "1.0.0"), "1.0.0")
    inspectors = EngineInspectors()
    updates = UpdateManager(SlotManager(tmp_path / "box"), UpdateSource.from_base(srv.url), _health(),
                            inspectors=inspectors)
    updates.trust_root(repo.trusted_root_path)
    try:
        status = updates.apply("models/washer-1.0.0.tgz")
        assert status.state == "committed", status.detail
        n_calibration = len(bundle_samples(trained_onnx / "onnx")[0])
        assert status.health["frames"] == n_calibration > 0  # the bundle's own good images were the samples
        assert status.health["agreement"] >= 0.75
        frames, _ = load_samples(trained_onnx / "data" / "washer" / "test", limit=100)
        torch_student = Inspector.load(trained_onnx / "torch")
        with inspectors.lease() as (inspector, label):
            assert label == "washer@1.0.0" and isinstance(inspector.model.net, OnnxModule)
            onnx_results = [inspector.inspect(f) for f in frames]
        torch_results = [torch_student.inspect(f) for f in frames]
        assert [r.defective for r in onnx_results] == [r.defective for r in torch_results]
        assert max(abs(a.score - b.score) for a, b in zip(onnx_results, torch_results, strict=True)) < 1e-4
    finally:
        inspectors.close()


def test_hostile_onnx_bundles_are_rolled_back_and_the_serving_model_stays(trained_onnx, tmp_path, serve_static):
    repo = ReleaseRepository.init(tmp_path / "release")
    srv = serve_static(repo.dir / "repository")
    garbage = tmp_path / "garbage"
    shutil.copytree(trained_onnx / "onnx", garbage)
    (garbage / "model.onnx").write_bytes(b"\x08\x07" + b"\xff" * 5000)  # a protobuf header, then nonsense
    no_samples = tmp_path / "no-samples"
    shutil.copytree(trained_onnx / "onnx", no_samples)
    (no_samples / "calibration.safetensors").write_bytes(b"\x00" * 12)
    for version, folder in (("1.0.0", trained_onnx / "onnx"), ("1.1.0", garbage), ("1.2.0", no_samples)):
        repo.add_target(f"models/w-{version}.tgz", make_bundle(folder, tmp_path / f"{version}.tgz", "washer",
                                                               version), version)
    inspectors = EngineInspectors()
    updates = UpdateManager(SlotManager(tmp_path / "box"), UpdateSource.from_base(srv.url), _health(),
                            inspectors=inspectors)
    updates.trust_root(repo.trusted_root_path)
    try:
        assert updates.apply("models/w-1.0.0.tgz").state == "committed"
        status = updates.apply("models/w-1.1.0.tgz")
        assert status.state == "rolled_back" and "ONNX Runtime cannot load it" in status.detail, status.detail
        status = updates.apply("models/w-1.2.0.tgz")
        assert status.state == "rolled_back" and "calibration" in status.detail, status.detail
        assert inspectors.ref == "washer@1.0.0" and updates.slots.committed().version == "1.0.0"
    finally:
        inspectors.close()


def test_factory_for_checks_device_and_precision_up_front():
    assert factory_for("inspection", "cpu", "int8") == InspectionFactory("cpu", "int8")
    with pytest.raises(UserError, match="precision"):
        factory_for("inspection", "cpu", "fp16")
    with pytest.raises(UserError, match="unknown device"):
        factory_for("inspection", "tpu", "fp32")


def _agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", "edge", "agent", *args], capture_output=True,
                          text=True, timeout=300)


def test_agent_cli_runs_the_onnx_student_with_device_and_precision(trained_onnx, tmp_path):
    test_images = trained_onnx / "data" / "washer" / "test"
    box = tmp_path / "box"
    out = _agent("--box", str(box), "--device-id", "b1", "--source", str(test_images), "--model",
                 str(trained_onnx / "onnx"), "--device", "cpu", "--precision", "fp32")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["frames"] == summary["stored"] == len(list(test_images.rglob("*.png")))
    assert "CPUExecutionProvider" in out.stderr  # ONNX Runtime ran it, on the CPU provider
    con = sqlite3.connect(box / "outbox.db")
    assert {json.loads(r[0])["model"] for r in con.execute("SELECT payload FROM results")} == {"washer-student@local"}

    # the export kept no int8 graph: refused in one line, no traceback
    bad = _agent("--box", str(tmp_path / "box2"), "--device-id", "b2", "--source", str(test_images), "--model",
                 str(trained_onnx / "onnx"), "--precision", "int8")
    assert bad.returncode != 0 and "no int8 ONNX graph" in bad.stderr and "Traceback" not in bad.stderr
    bad = _agent("--box", str(tmp_path / "box3"), "--device-id", "b3", "--source", str(test_images), "--model",
                 str(trained_onnx / "onnx"), "--device", "tpu")
    assert bad.returncode != 0 and "unknown device" in bad.stderr and "Traceback" not in bad.stderr


def test_bundle_samples_refuse_a_model_without_good_images(tmp_path: Path):
    with pytest.raises(UserError, match="calibration"):
        bundle_samples(tmp_path)
    (tmp_path / "calibration.safetensors").write_bytes(b"{}")
    with pytest.raises(UserError, match="unreadable"):
        bundle_samples(tmp_path)


def test_precision_int8_runs_the_int8_graph_the_export_kept(trained_onnx, tmp_path):
    """An exported folder whose onnx.json lists an int8 variant (as `export --int8` writes it when recall holds):
    the agent's factory at int8 runs that graph through the same adapter."""

    from npusuite.inspection.export import INT8_FILE, quantize_int8
    from npusuite.inspection.samples import calibration_batch
    from npusuite.platform.runtime.onnx_runtime import read_info, write_info

    folder = tmp_path / "with-int8"
    shutil.copytree(trained_onnx / "onnx", folder)
    calib = calibration_batch(folder)
    quantize_int8(folder / "model.onnx", folder / INT8_FILE, calib, "image")
    info = read_info(folder)
    info.variants["int8"] = INT8_FILE
    write_info(folder, info)
    inspector = InspectionFactory("cpu", "int8")(folder)
    assert inspector.model.net.path.name == INT8_FILE and inspector.model.net.precision == "int8"
    frames, _ = load_samples(trained_onnx / "data" / "washer" / "test")
    assert 0.0 <= inspector.inspect(frames[0]).score <= 1.0
    assert InspectionFactory("cpu", "fp32")(folder).model.net.path.name == "model.onnx"


def _on_openvino(folder: Path, precision: str, graph: str, trained_onnx: Path):
    """List ``graph`` as the folder's ``precision`` variant on OpenVINO, as the export does; the agent's factory
    at that precision and at fp32, and the test frames."""
    from npusuite.platform.runtime.onnx_runtime import read_info, write_info

    info = read_info(folder)
    info.variants[precision], info.engines[precision] = graph, "openvino"
    write_info(folder, info)
    inspector = InspectionFactory("cpu", precision)(folder)
    net = inspector.model.net
    assert net.engine == "openvino" and net.precision == precision and inspector.fused
    frames, _ = load_samples(trained_onnx / "data" / "washer" / "test")
    return inspector, InspectionFactory("cpu", "fp32")(folder), frames


def test_precision_int8_runs_an_int8_graph_written_for_openvino_on_openvino(trained_onnx, tmp_path):
    """`export --int8 --int8-engine openvino` lists the QDQ graph with engine openvino: the agent's factory at
    int8 runs it there, close to the fp32 graph."""

    from npusuite.inspection.export import INT8_FILE, quantize_int8
    from npusuite.inspection.samples import calibration_batch
    from npusuite.platform.runtime.openvino_session import supports

    if not supports("int8"):
        pytest.skip("this CPU offers no int8 to OpenVINO")
    folder = tmp_path / "with-openvino-int8"
    shutil.copytree(trained_onnx / "onnx", folder)
    calib = calibration_batch(folder)
    quantize_int8(folder / "model.onnx", folder / INT8_FILE, calib, "image", engine="openvino")
    inspector, fp32, frames = _on_openvino(folder, "int8", INT8_FILE, trained_onnx)
    diffs = [abs(inspector.inspect(f).score - fp32.inspect(f).score) for f in frames[:8]]
    assert max(diffs) < 0.2 and any(d > 0 for d in diffs)  # int8 really computed, and close


def test_precision_bf16_runs_the_graph_on_openvino_where_the_export_kept_it(trained_onnx, tmp_path):
    """`export --bf16` lists a bf16 variant (model.onnx on OpenVINO) only where torch's verdicts held: the
    agent's factory at bf16 runs it there; a bundle without it, or a torch folder, is refused in one line."""
    from npusuite.platform.runtime.openvino_session import supports

    with pytest.raises(UserError, match="no bf16 ONNX graph"):
        InspectionFactory("cpu", "bf16")(trained_onnx / "onnx")
    with pytest.raises(UserError, match="torch model folder"):
        InspectionFactory("cpu", "bf16")(trained_onnx / "torch")
    if not supports("bf16"):
        pytest.skip("this CPU offers no bf16 to OpenVINO")
    folder = tmp_path / "with-bf16"
    shutil.copytree(trained_onnx / "onnx", folder)
    inspector, fp32, frames = _on_openvino(folder, "bf16", "model.onnx", trained_onnx)
    for frame in frames[:6]:
        a, b = inspector.inspect(frame), fp32.inspect(frame)
        assert abs(a.score - b.score) < 0.05 and a.heatmap.shape == b.heatmap.shape
