"""Inspection fixtures: a small generated dataset, a quickly trained model, a real pymodbus PLC process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from npusuite.platform.kafka.broker import free_port


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from npusuite.inspection.generate import GenerateConfig, generate

    root = tmp_path_factory.mktemp("insp-data")
    generate(root, GenerateConfig(train_good=40, test_good=12, test_per_defect=3, seed=1), ("washer",))
    return root


@pytest.fixture(scope="session")
def tiny_model(small_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher+student trained for a few steps: real files and real code paths, not a good detector."""
    from npusuite.inspection.train import TrainConfig, train

    out = tmp_path_factory.mktemp("insp-model") / "washer"
    train(small_data / "washer", out, TrainConfig(teacher_steps=15, student_steps=15, batch_size=8,
                                                  teacher_widths=(8, 16, 32), progress=False))
    return out


class Plc:
    def __init__(self, port: int, log: Path, proc: subprocess.Popen) -> None:
        self.port, self.log, self.proc = port, log, proc

    def writes(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture
def plc(tmp_path: Path) -> Iterator[Plc]:
    """A real pymodbus Modbus/TCP server in its own process, logging coil writes."""
    port = free_port()
    log = tmp_path / "coil-writes.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "npusuite.inspection.plc_sim", "--port", str(port), "--log",
                             str(log)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and not line.startswith("READY"):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError("PLC simulator exited before it was ready")
    try:
        yield Plc(port, log, proc)
    finally:
        proc.terminate()
        proc.wait(10)
