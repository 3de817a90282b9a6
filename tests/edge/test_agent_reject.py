"""Reject signals from the agent reach a real Modbus/TCP server, one per NG part, after the result is stored."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import cv2

from npusuite.edge.simulate import sample_frames, write_sim_model


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ng_parts_set_the_reject_coil(tmp_path):
    port = _port()
    writes = tmp_path / "writes.jsonl"
    plc = subprocess.Popen([sys.executable, "-m", "npusuite.inspection.plc_sim", "--port", str(port), "--log",
                            str(writes)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert plc.stdout.readline().startswith("READY"), "PLC simulator did not start"
        frames, truth = sample_frames(12, seed=2)
        (tmp_path / "frames").mkdir()
        for f in frames:
            cv2.imwrite(str(tmp_path / "frames" / f.name), f.image)
        write_sim_model(tmp_path / "model", "line-a", "1.0.0")
        box = str(tmp_path / "box")
        out = subprocess.run([sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", box,
                              "--device-id", "b1", "--source", str(tmp_path / "frames"), "--pipeline", "sim",
                              "--model", str(tmp_path / "model"), "--modbus", f"127.0.0.1:{port}", "--coil", "3",
                              "--reject-window-ms", "5000", "--frame-interval-ms", "150"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout[out.stdout.index("{"):])["ng"] == sum(truth) == 3
    finally:
        plc.terminate()
        plc.wait(10)
    sets = [w for w in map(json.loads, writes.read_text().splitlines()) if w["address"] == 3 and w["value"]]
    assert len(sets) == sum(truth)
