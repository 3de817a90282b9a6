"""Simulated line hardware for fleet-scale simulations (``--pipeline sim``): *not* a production model.

``SimInspector`` is a deliberately tiny but real inspector: its "model" is a
``sim-model.json`` in the model folder (``threshold``, ``mode``), it scores a
frame by the fraction of very dark pixels (a synthetic "scratch"), and it
returns the inspection pipeline's own ``Inspection`` record.  ``mode`` lets a
release build a *broken* model on purpose, to exercise health checks and
rollbacks: ``ok``, ``nan`` (scores NaN), ``crash`` (fails to load), ``slow``
(sleeps ``delay_ms`` per frame).

The production agent, the demo, the trained-model fleet test and
``bench/edge.py`` run the trained student instead (exported to ONNX, through
:class:`npusuite.edge.pipeline.InspectionFactory`); this module exists so
twenty simulated boxes fit on a 2-core machine where the model is not what is
measured (campaign mechanics, outbox, sync).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from npusuite.inspection.records import Frame, Inspection

SIM_MODEL_FILE = "sim-model.json"


def write_sim_model(model_dir: Path, name: str, version: str, mode: str = "ok", threshold: float = 0.02,
                    delay_ms: float = 0.0) -> Path:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / SIM_MODEL_FILE).write_text(json.dumps(
        {"name": name, "version": version, "mode": mode, "threshold": threshold, "delay_ms": delay_ms}))
    return model_dir


class SimInspector:
    def __init__(self, model_dir: Path) -> None:
        path = Path(model_dir) / SIM_MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{model_dir} holds no {SIM_MODEL_FILE} (not a simulated model)")
        cfg = json.loads(path.read_text())
        if cfg["mode"] == "crash":
            raise RuntimeError("simulated model refuses to load")
        self.cfg = cfg
        self.model = f"{cfg['name']}@{cfg['version']}"

    def inspect(self, frame: Frame) -> Inspection:
        t0 = time.perf_counter()
        if self.cfg["mode"] == "slow":
            time.sleep(self.cfg["delay_ms"] / 1000)
        gray = frame.image.mean(axis=2)
        dark = gray < 40
        score = float("nan") if self.cfg["mode"] == "nan" else float(dark.mean())
        boxes = []
        if dark.any():
            ys, xs = np.nonzero(dark)
            boxes = [(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))]
        return Inspection(frame=frame, score=score, threshold=float(self.cfg["threshold"]),
                          heatmap=dark.astype(np.float32), boxes=boxes,
                          latency_ms=(time.perf_counter() - t0) * 1000, model=self.model)


def sim_factory(model_dir: Path) -> SimInspector:
    return SimInspector(model_dir)


def sample_frames(n: int, seed: int = 0, size: int = 64, defect_every: int = 4) -> tuple[list[Frame], list[bool]]:
    """``n`` synthetic grey parts; every ``defect_every``-th has a dark scratch.  Returns frames and truth."""
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for i in range(n):
        img = np.full((size, size, 3), 170, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
        ng = defect_every > 0 and i % defect_every == defect_every - 1
        if ng:
            y = int(rng.integers(8, size - 8))
            img[y:y + 3, 8:size - 8] = 10
        frames.append(Frame(image=img, timestamp=time.time(), source="sim", seq=i, name=f"part-{i:06d}.png"))
        truth.append(ng)
    return frames, truth
