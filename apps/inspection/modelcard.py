"""An inspection model on disk: the platform's torch-module folder plus ``inspection.json``.

Layout of a model folder (what ``inspection train --out`` writes and what the
platform repository stores as one version)::

    model.safetensors, module.json      the net (platform ``save_module``)
    inspection.json                     :class:`ModelCard`: threshold, smoothing, working size, calibration,
                                        evaluation means, what the working size traded, lineage
    evaluation.json, evaluation.png     (when trained on an MVTec product with defects) ``inspection evaluate``
    calibration.safetensors             up to 32 held-back good images, for int8 calibration
    teacher/                            (student folders only) the teacher it was distilled from

Rules:

* A folder without a readable ``inspection.json`` is not an inspection model:
  :func:`load` raises :class:`UserError`.
* Loading goes through the platform: :func:`~npusuite.platform.repository.resolve_reference`
  (``name``, ``name@version``, ``name@alias`` or a folder; checksums verified
  for repository versions) then :func:`~npusuite.platform.runtime.modules.load_module`.
* ``precision="int8"`` quantises the loaded float net statically with the
  stored calibration images (see :func:`npusuite.inspection.nets.quantize_int8`).
* An exported folder (``inspection export``: ``model.onnx``, ``onnx.json``, the
  same card) loads as its ONNX graph
  (:class:`~npusuite.platform.runtime.onnx_runtime.OnnxModule`), so ``score``
  and ``evaluate`` judge the artefact that ships; ``precision`` picks the
  export's variant (fp32, int8, or bf16 on OpenVINO) and a variant the export
  did not keep is refused in one line.  ``bf16`` exists only for exported folders.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

CARD = "inspection.json"
CALIBRATION = "calibration.safetensors"


class CalibrationInfo(BaseModel):
    """How the threshold was chosen (:mod:`npusuite.inspection.calibration`)."""

    method: str
    confidence: float
    images: int
    empirical: float  # the plain empirical-quantile threshold, for comparison
    fitted: float     # the fitted quantile before the confidence bound


class EvaluationMetrics(BaseModel):
    """Detection figures on one defect type (or their mean over types), see :mod:`npusuite.inspection.evaluate`."""

    images: int
    image_auroc: float
    pixel_auroc: float | None = None  # None: no ground-truth masks
    pro: float | None = None          # per-region overlap, integrated to 30% pixel FPR, normalised to [0, 1]
    recall: float                     # defect images at or above the calibrated threshold
    precision: float
    f1: float


class ModelCard(BaseModel):
    """What the scoring policy needs plus how the model came to be."""

    role: str  # teacher | student
    product: str | None = None
    threshold: float
    smooth_px: int = 3
    size_px: list[int]  # [width, height] the net was trained on
    target_frr: float
    holdout_scores: list[float] = []
    train_seconds: float | None = None
    final_loss: float | None = None
    parameters: int | None = None
    steps: int | None = None
    source_size_px: list[int] | None = None  # [width, height] of the first training image (before resizing)
    crop_px: int | None = None               # side of the square training crops of the working frame
    trade_off: str | None = None             # what the working size and crops give up, in words
    calibration: CalibrationInfo | None = None
    evaluation: EvaluationMetrics | None = None  # mean over defect types on PRODUCT/test, when it had defects


@dataclass
class LoadedModel:
    """A net ready to run, its card, and the ``name@version`` it came from."""

    net: Any  # torch.nn.Module
    card: ModelCard
    ref: str
    path: Path
    precision: str


def save(net, out: Path, arch: str, config: dict, card: ModelCard, calibration: np.ndarray | None = None) -> Path:
    """Write a model folder (see the module docstring)."""
    import torch
    from safetensors.torch import save_file

    from npusuite.platform.runtime.modules import save_module

    w, h = card.size_px
    spec_in = [{"name": "image", "datatype": "FP32", "shape": [-1, 3, h, w]}]
    spec_out = [{"name": "logits", "datatype": "FP32", "shape": [-1, 1, h, w]}]
    save_module(net, out, arch, config, inputs=spec_in, outputs=spec_out)
    (out / CARD).write_text(card.model_dump_json(indent=2) + "\n")
    if calibration is not None:
        images = torch.from_numpy(np.ascontiguousarray(calibration)).permute(0, 3, 1, 2).contiguous()
        save_file({"images": images}, str(out / CALIBRATION))
    return out


def attach_evaluation(folder: Path, metrics: EvaluationMetrics) -> None:
    """Record the evaluation's mean figures in the card of the model folder ``folder``."""
    card = read_card(folder)
    card.evaluation = metrics
    (folder / CARD).write_text(card.model_dump_json(indent=2) + "\n")


def read_card(folder: Path) -> ModelCard:
    try:
        return ModelCard.model_validate(json.loads((folder / CARD).read_text()))
    except FileNotFoundError:
        raise UserError(f"{folder} is not an inspection model (no {CARD})") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise UserError(f"{folder}/{CARD} is unreadable: {str(exc).splitlines()[0]}") from None


def load(ref: str | Path, root: Path | None = None, precision: str = "fp32", device: str = "cpu",
         threads: int = 0) -> LoadedModel:
    """Resolve and load an inspection model.

    ``ref``: a model folder, or ``name[@version|@alias]`` in the repository at
    ``root``.  ``threads``: an ONNX graph's intra-op threads (0: the runtime's default).  Raises
    :class:`UserError` (unknown model, corrupt files, not an inspection model, unsupported precision).
    """
    from npusuite.platform.repository import resolve_reference
    from npusuite.platform.runtime.devices import get_device

    if precision not in ("fp32", "int8", "bf16"):
        raise UserError(f"precision {precision!r}: inspection models run as fp32, int8 or bf16")
    version = resolve_reference(ref, root)
    card = read_card(version.path)
    dev = get_device(device)
    dev.check()
    name = version.ref if version.version != "local" else f"{card.product or version.name}-{card.role}@local"
    if version.manifest.kind == "onnx":
        from npusuite.platform.runtime.onnx_runtime import OnnxModule

        net = OnnxModule.open_variant(version.path, dev, precision, threads)
        logger.info("loaded inspection model %s (%s, ONNX %s on %s, threshold %.4f)", name, card.role, precision,
                    net.engine, card.threshold)
        return LoadedModel(net=net, card=card, ref=name, path=version.path, precision=precision)
    if precision == "bf16":
        raise UserError(f"{version.path} is a torch model folder; bf16 runs an exported ONNX folder on OpenVINO "
                        f"(`inspection export --bf16`)")
    from npusuite.platform.runtime.modules import load_module

    net = load_module(version.path, device=dev.torch_device() if precision == "fp32" else None)
    if precision == "int8":
        from safetensors.torch import load_file

        from npusuite.inspection.nets import quantize_int8

        if dev.kind != "cpu":
            raise UserError("int8 inspection models run on the CPU only (x86 quantised kernels)")
        calib_path = version.path / CALIBRATION
        if not calib_path.is_file():
            raise UserError(f"{version.path} has no {CALIBRATION}; cannot calibrate int8")
        net = quantize_int8(net, load_file(str(calib_path))["images"])
    logger.info("loaded inspection model %s (%s, %s, threshold %.4f)", name, card.role, precision, card.threshold)
    return LoadedModel(net=net, card=card, ref=name, path=version.path, precision=precision)
