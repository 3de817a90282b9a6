"""The edge demo step: the model the demo trained, exported to ONNX, signed and rolled out by a fleet campaign to an
agent that runs it with ONNX Runtime."""

from __future__ import annotations

import json
import shutil
import socket
import time

import httpx
import pytest

from npusuite.edge.demo import step
from npusuite.platform.demo import DemoContext


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_step(ctx: DemoContext) -> None:
    ctx.shared.update(edge_fleet_port=str(_port()), edge_status_port=str(_port()))
    try:
        step(ctx)
        status_url = next(s.url for s in ctx.services if s.name == "edge-agent")
        auth = {"Authorization": "Bearer demo-admin"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = httpx.get(status_url, headers=auth, timeout=5).json()
            if st["update"]["state"] == "committed" and st["stored"] > 0:
                break
            time.sleep(0.5)
        assert st["update"]["state"] == "committed", st["update"]
        assert st["slots"]["slots"]["a"]["version"] == "1.0.0" and st["model"] == "line-a@1.0.0"
        assert st["update"]["health"]["frames"] > 0  # checked on the bundle's calibration images
        assert st["inspect_errors"] == 0
    finally:
        ctx.stop_all()
    codes = {s.name: s.proc.returncode for s in ctx.services}
    # uvicorn re-raises SIGTERM after a clean shutdown, so the fleet server may report -15
    assert set(codes.values()) <= {0, -15}, (codes, [s.log.read_text()[-1500:] for s in ctx.services])
    slot = ctx.workdir / "edge" / "box" / "slots" / "a" / "bundle" / "model"
    assert (slot / "model.onnx").is_file() and not (slot / "model.safetensors").exists()  # the ONNX student shipped
    log = (ctx.workdir / "logs" / "edge-agent.log").read_text()
    assert "model.onnx on cpu (CPUExecutionProvider, optimisation" in log  # ONNX Runtime ran it
    # the export judged the int8 graph for OpenVINO: kept (listed for OpenVINO), dropped, or "not evaluated"
    int8 = json.loads((ctx.workdir / "edge" / "model-onnx" / "export.json").read_text())["student"]["int8"]
    info = json.loads((slot / "onnx.json").read_text())
    assert int8["engine"] == "openvino" and int8["reason"]
    assert ("int8" in info["variants"]) is int8["kept"] and (info["engines"].get("int8") == "openvino") is int8["kept"]


def test_demo_step_rolls_the_trained_onnx_student_out_to_the_agent(tmp_path, trained_onnx):
    """With the inspection step's trained model in place (here: the session's tiny one), the edge step exports,
    signs and rolls it out."""
    ctx = DemoContext(tmp_path, bootstrap="127.0.0.1:1", admin_token="demo-admin")
    shutil.copytree(trained_onnx / "torch", tmp_path / "inspection" / "model")
    shutil.copytree(trained_onnx / "data", tmp_path / "inspection" / "data")
    _run_step(ctx)


@pytest.mark.slow
def test_demo_step_alone_trains_its_own_model(tmp_path):
    _run_step(DemoContext(tmp_path, bootstrap="127.0.0.1:1", admin_token="demo-admin"))
