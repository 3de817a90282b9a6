"""The inspection app's adapter: what an inspection version must be before the engine switches to it.

Used by the live line (:mod:`npusuite.inspection.line`) and the edge agent
(:mod:`npusuite.edge.agent`), through the platform's
:class:`~npusuite.platform.engine.ModelEngine`.  Rules, in order (any failure
refuses the version with ``SwapError``; the serving version keeps inspecting):

1. build: the version's ``inspection.json`` card (none, or unreadable:
   refused); the input the card promises must fit the net: three colour
   channels, and the card's ``size_px`` must match the manifest's fixed input
   dimensions and be a multiple of the net's down-sampling factor (a U-Net
   fed another size fails at its skip connections); then, for
   ``precision="int8"``, a torch net is quantised ONCE here with the calibration
   images stored in the version, and an ONNX version (``kind="onnx"``, run by
   ONNX Runtime) switches to the int8 graph its export kept (none kept:
   refused); ``precision="bf16"`` switches an ONNX version to its bf16
   variant (the graph on OpenVINO, kept by ``inspection export --bf16``) and
   refuses a torch one; the result is an
   :class:`~npusuite.inspection.inspector.Inspector`;
2. warm: inspect one calibration image (a blank grey frame when the version
   stores none) end to end; a non-finite score refuses the version.

Worker ``"direct"``: the line already forms its batches from the source
queue and runs the inspector under a lease; a batcher would only add a
thread hop per frame.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from npusuite.inspection.inspector import Inspector
from npusuite.inspection.modelcard import CALIBRATION, LoadedModel, read_card
from npusuite.inspection.records import Frame
from npusuite.platform.engine.adapter import AppAdapter, WorkerKind, require_tensor
from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.onnx_runtime import OnnxModule
from npusuite.platform.runtime.protocols import Runtime

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16")


class InspectionAdapter(AppAdapter[Inspector]):
    """See the module rules."""

    def __init__(self, precision: str = "fp32", min_box_area_px: int = 1) -> None:
        if precision not in PRECISIONS:
            raise UserError(f"precision {precision!r}: inspection runs fp32, int8 or bf16 (bf16: an exported ONNX "
                            f"folder on OpenVINO)")
        self.precision = precision
        self.min_box_area_px = min_box_area_px

    def worker(self, version: ModelVersion) -> WorkerKind:
        return "direct"

    def build(self, version: ModelVersion, runtime: Runtime) -> Inspector:
        card = read_card(version.path)
        net = require_tensor(runtime, version).module
        # the inspection U-Nets declare their down-sampling factor; a net without one takes any size
        _check_input(version, card.size_px, getattr(net, "multiple_px", 1))
        if self.precision in ("int8", "bf16") and isinstance(net, OnnxModule):
            net = net.variant(self.precision)  # the export's variant, kept only where recall held (inspection export)
        elif self.precision == "bf16":
            raise UserError(f"{version.ref} is a torch model folder; bf16 runs an exported ONNX folder on OpenVINO "
                            f"(`inspection export --bf16`)")
        elif self.precision == "int8":
            from npusuite.inspection.nets import quantize_int8

            images = _calibration(version.path)
            if images is None:
                raise UserError(f"{version.ref} has no {CALIBRATION}; cannot calibrate int8")
            net = quantize_int8(net, images)
        ref = version.ref if version.version != "local" else f"{card.product or version.name}-{card.role}@local"
        return Inspector(LoadedModel(net, card, ref, version.path, self.precision), self.min_box_area_px)

    def warm(self, app: Inspector) -> None:
        from npusuite.inspection.samples import calibration_images

        # the stored good images are float in [0, 1] or uint8; calibration_images gives camera-like uint8 BGR
        image = (calibration_images(app.model.path, limit=1)[0] if (app.model.path / CALIBRATION).is_file()
                 else np.full((app.height_px, app.width_px, 3), 128, np.uint8))
        result = app.inspect(Frame(image=np.ascontiguousarray(image, dtype=np.uint8), timestamp=time.time(),
                                   source="warmup", seq=0, name="warmup"))
        if not math.isfinite(result.score):
            raise UserError(f"{app.ref} gives a non-finite score on a calibration image")


def _check_input(version: ModelVersion, size_px: list[int], multiple_px: int) -> None:
    if len(size_px) != 2 or min(size_px) <= 0:
        raise UserError(f"{version.ref}: card size_px {size_px} is not [width, height]")
    width, height = size_px
    if width % multiple_px or height % multiple_px:
        raise UserError(f"{version.ref}: card size_px {size_px} is not a multiple of the net's {multiple_px} px "
                        f"down-sampling; the net cannot take that input size")
    for spec in version.manifest.inputs or []:
        dims = list(spec.shape)
        if len(dims) != 4 or dims[1] not in (-1, 3):
            raise UserError(f"{version.ref}: input {spec.name!r} has shape {dims}; inspection feeds [-1, 3, H, W]")
        if any(d not in (-1, want) for d, want in ((dims[2], height), (dims[3], width))):
            raise UserError(f"{version.ref}: input {spec.name!r} is {dims[3]}x{dims[2]} px but its card says "
                            f"{width}x{height}")


def _calibration(folder: Path):
    """The version's calibration images (uint8 [N, 3, H, W]), or None when it stores none."""
    path = folder / CALIBRATION
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    return load_file(str(path))["images"]
