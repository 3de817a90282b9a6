"""Export an inspection model for portable runtimes: ONNX (fp32, optional int8) and the Ascend ``.om`` recipe.

What ``npusuite inspection export MODEL --out DIR`` writes (an ONNX model
folder the platform runs with :mod:`npusuite.platform.runtime.onnx_runtime`,
and what edge bundles carry)::

    model.onnx, onnx.json           the student, fp32, dynamic batch axis (input ``image`` N x 3 x H x W;
                                    outputs ``logits``, and ``heatmap`` + ``score`` from the fused scoring head)
    model.int8.onnx                 (--int8, only when kept: rule 5) static int8: QOperator for ONNX Runtime,
                                    or QDQ for OpenVINO (--int8-engine openvino)
                                    (--bf16, only when kept: rule 6) no new file: onnx.json's ``bf16`` variant
                                    is model.onnx compiled by OpenVINO at bf16
    inspection.json                 the student's card, unchanged (threshold, smoothing, size)
    calibration.safetensors         the held-back good images the card was calibrated on
    export.json                     :class:`ExportReport`: parity, the int8 decision, the ``atc`` recipe
    teacher/                        (--teacher) the teacher, the same layout
    om/atc.sh, om/atc.json          (--format om) the exact ``atc`` command and config for a 310B

Rules, in order (a failure raises :class:`UserError`; nothing half-written is left as a model folder):

1. The torch net is whatever ``nn.Module`` the model folder holds (loaded
   through the platform, :func:`npusuite.inspection.modelcard.load`); it is
   traced with the TorchScript exporter (``dynamo=False``: stable dynamic
   batch for these convnets) at opset :data:`OPSET`, batch axis dynamic,
   height and width fixed at the card's ``size_px``.
2. The scoring policy is fused into the graph (:func:`add_heatmap_head`):
   ``sigmoid`` -> ``smooth_px`` box filter (``AveragePool``, padding not
   counted) -> ``heatmap`` (N x H x W) and its maximum ``score`` (N), as
   :mod:`npusuite.inspection.scoring` computes them in torch, so ONNX Runtime
   returns heatmap and score in ONE call and the inspector's ONNX path needs
   no torch (one session call dominates a net this small).  ``logits`` stays
   the first output (the torch module's calling convention).  The smoothing
   is recorded in the graph's metadata (``npusuite.smooth_px``) so int8
   quantisation can strip the head, quantise the net alone and put the head
   back in float.
3. **Parity**: the ONNX graph is run by ONNX Runtime (CPU) and the torch net
   by torch on the same images (``--images``, else the stored calibration
   images), both through :class:`~npusuite.inspection.inspector.Inspector`
   (resize, threshold, boxes: one implementation; sigmoid, box filter and
   max: torch's scoring functions for the torch net, the fused head for the
   graph, so the check covers the head too).  Recorded: the largest heatmap difference
   and the verdicts that differ.  The export is refused when the heatmaps
   differ by more than ``max_heat_diff`` or any verdict differs on an image
   whose torch score is not within ``max_heat_diff`` of the threshold (a
   score that close is float noise, reported as ``borderline``).
4. ``--format om`` adds the Ascend recipe; the ``atc`` tool is not run here
   unless it is on ``PATH`` (CANN toolkit) — without it the recipe is
   checked only for what can be checked without the tool (the graph's
   opset and operator types, the input shape against the card).
5. ``--int8``: ONNX Runtime static quantisation calibrated on the stored
   good images (:func:`quantize_int8`: QOperator, per-channel int8 weights,
   uint8 activations, MinMax; the first conv, the output conv and the
   nearest-neighbour ``Resize`` stay fp32, and the graph runs at ORT's
   EXTENDED optimisation level, recorded in ``onnx.json``).  It is
   evaluated on ``--images`` (labels from folder names: an image under a
   ``good`` folder is good, anything else a defect) and KEPT only if its
   recall at the card's calibrated threshold is within ``max_recall_drop``
   (0.5 points) of the fp32 graph's; otherwise ``model.int8.onnx`` is not
   written and the report says why.  It needs ``--images`` with defects.
   Only the net is quantised; the fused head stays fp32 (rule 2).
   ``--int8-engine openvino`` (where OpenVINO offers int8 on this CPU)
   writes the int8 graph for OpenVINO instead: QDQ pairs, everything but
   the output conv's weights quantised (:func:`quantize_int8`), run by OpenVINO
   (``onnx.json``: engine ``openvino`` for ``int8``) under the same keep
   rule.  Measured on the 128 px washer student on an AVX-512 VNNI CPU: the
   net alone 767 frames/s at one thread against 327 for ONNX Runtime fp32
   (docs/inspection.md, "Export").
6. ``--bf16``: the fp32 graph compiled by OpenVINO at bf16 inference
   precision (the AMX matrix units of Sapphire Rapids and later Xeons;
   :mod:`npusuite.platform.runtime.openvino_session`).  It needs ``--images``
   with defects and a CPU that offers bf16, and it is KEPT (``onnx.json``:
   variant ``bf16`` -> ``model.onnx``, engine ``openvino``) only if its verdict
   equals torch's on every image whose torch score is clear of the threshold
   (the parity check of rule 3, without its heatmap bound: bf16 moves heatmaps
   by ~1e-2) and its recall at the calibrated threshold is within
   ``max_recall_drop`` of the fp32 graph's, and it rejects no more of the
   stored calibration images (the good parts the threshold was placed on)
   than the fp32 graph does.  Otherwise the report says why and
   ``onnx.json`` does not list it.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "om")
OPSET = 17
#: outputs of the fused scoring head (rule 2)
HEATMAP, SCORE = "heatmap", "score"
SMOOTH_KEY = "npusuite.smooth_px"
REPORT = "export.json"
INT8_FILE = "model.int8.onnx"
#: engines an int8 graph can be written for (rule 5)
INT8_ENGINES = ("onnxruntime", "openvino")
SOC_VERSION = "Ascend310B1"
#: --om-precision -> atc --precision_mode (CANN ATC documentation's values)
OM_PRECISION_MODES = {"fp16": "force_fp16", "fp32": "force_fp32", "mixed": "allow_mix_precision"}
#: batch sizes the .om model is built for (atc --dynamic_batch_size)
OM_BATCHES = (1, 2, 4, 8)
#: operator types this exporter's nets use, all in CANN's ONNX operator list (checked on paper, not by atc)
ATC_KNOWN_OPS = frozenset({"Conv", "Relu", "MaxPool", "Resize", "Concat", "Sub", "Div", "Add", "Mul",
                           "BatchNormalization", "Sigmoid", "Constant", "Identity", "Upsample", "AveragePool",
                           "LeakyRelu", "Clip", "Reshape", "Transpose", "Shape", "Gather", "Unsqueeze", "Cast",
                           "Squeeze", "ReduceMax"})


@dataclass(frozen=True)
class ExportConfig:
    format: str = "onnx"
    teacher: bool = False
    int8: bool = False
    bf16: bool = False
    #: which engine the int8 graph is written for and run by: "onnxruntime" (QOperator) or "openvino" (QDQ)
    int8_engine: str = "onnxruntime"
    #: images for the parity check and the int8/bf16 evaluation (None: the stored calibration images)
    images: Path | None = None
    max_heat_diff: float = 1e-3
    max_recall_drop: float = 0.005
    soc_version: str = SOC_VERSION
    om_precision: str = "fp16"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"--format {self.format!r}: choose {' or '.join(FORMATS)}")
        if self.om_precision not in OM_PRECISION_MODES:
            raise UserError(f"--om-precision {self.om_precision!r}: choose {', '.join(OM_PRECISION_MODES)}")
        if self.int8_engine not in INT8_ENGINES:
            raise UserError(f"--int8-engine {self.int8_engine!r}: choose {' or '.join(INT8_ENGINES)}")
        if self.int8_engine != "onnxruntime" and not self.int8:
            raise UserError("--int8-engine chooses the engine of the int8 graph: add --int8")
        if self.int8 and self.images is None:
            raise UserError("--int8 is kept only if recall holds: pass --images with good/ and defect folders")
        if self.bf16 and self.images is None:
            raise UserError("--bf16 is kept only if verdicts and recall hold: pass --images with good/ and defect "
                            "folders")


class Parity(BaseModel):
    images: int
    max_heat_diff: float
    max_score_diff: float
    same_verdicts: int
    #: images whose verdict differs although the torch score is clear of the threshold
    mismatches: list[str] = []
    #: images whose verdict differs with a score within max_heat_diff of the threshold (float noise)
    borderline: list[str] = []


class Quality(BaseModel):
    good: int
    defects: int
    recall: float
    false_reject_rate: float


class Int8Decision(BaseModel):
    kept: bool
    reason: str
    fp32: Quality | None = None
    int8: Quality | None = None
    parity: Parity | None = None
    #: the engine the int8 graph was written for and judged on (``onnx.json`` names it for the variant)
    engine: str = "onnxruntime"


class Bf16Decision(BaseModel):
    kept: bool
    reason: str
    fp32: Quality | None = None
    bf16: Quality | None = None
    #: against the torch net (rule 3's comparison; its heatmap bound is not applied to bf16)
    parity: Parity | None = None
    #: the stored calibration images (held-back good parts): share rejected by the fp32 graph and by bf16,
    #: and the largest score difference between them
    calibration_frr_fp32: float | None = None
    calibration_frr_bf16: float | None = None
    calibration_max_score_diff: float | None = None


class AtcRecipe(BaseModel):
    command: list[str]
    soc_version: str
    input_shape: str
    dynamic_batch_size: str
    precision_mode: str
    op_types: list[str]
    unchecked_ops: list[str]
    ran: bool = False
    note: str


class RoleExport(BaseModel):
    role: str
    onnx: str
    bytes: int
    export_seconds: float
    parity: Parity
    int8: Int8Decision | None = None
    bf16: Bf16Decision | None = None
    atc: AtcRecipe | None = None


class ExportReport(BaseModel):
    source: str
    format: str
    opset: int
    images: str
    student: RoleExport
    teacher: RoleExport | None = None


@dataclass
class Sample:
    frames: list  # of npusuite.inspection.records.Frame
    defective: list[bool]


def load_samples(images: Path | None, calibration: Path) -> Sample:
    """Frames for parity/evaluation: every image under ``images`` (labelled by folder name), else the
    calibration images (all good).  Raises UserError when there are none."""
    from npusuite.inspection.images import scan_folder
    from npusuite.inspection.records import Frame

    frames, defective = [], []
    if images is not None:
        if not Path(images).is_dir():
            raise UserError(f"--images {images}: no such folder")
        for i, item in enumerate(scan_folder(images)):
            if item.image is None:
                continue
            frames.append(Frame(image=item.image, timestamp=0.0, source=str(images), seq=i, name=item.name))
            defective.append("good" not in Path(item.name).parts[:-1])
        if not frames:
            raise UserError(f"--images {images} holds no readable images")
        return Sample(frames, defective)
    from npusuite.inspection.samples import calibration_frames

    frames = calibration_frames(calibration.parent)
    defective = [False] * len(frames)
    return Sample(frames, defective)


def export_onnx(net, path: Path, size_px: list[int], input_name: str = "image", output_name: str = "logits") -> None:
    """Trace ``net`` (any ``nn.Module`` taking N x 3 x H x W) to ONNX with a dynamic batch axis."""
    import warnings

    import torch

    width, height = size_px
    dummy = torch.rand(2, 3, height, width)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation notices
        torch.onnx.export(net.eval(), (dummy,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    import onnx

    onnx.checker.check_model(str(path))


def add_heatmap_head(path: Path, smooth_px: int, logits: str = "logits") -> None:
    """Append the scoring policy to the graph at ``path`` (rule 2): outputs ``heatmap`` and ``score`` beside
    ``logits``.  Rewrites the file; raises ValueError for a graph without ``logits`` or already headed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    outputs = [o.name for o in graph.output]
    if logits not in outputs or HEATMAP in outputs:
        raise ValueError(f"{path}: outputs {outputs}; need {logits!r} and no {HEATMAP!r} yet")
    nodes = [helper.make_node("Sigmoid", [logits], ["npusuite_head_sigmoid"], name="npusuite_head_sigmoid")]
    src = "npusuite_head_sigmoid"
    if smooth_px > 1:
        pad = smooth_px // 2
        nodes.append(helper.make_node("AveragePool", [src], ["npusuite_head_smoothed"], name="npusuite_head_smooth",
                                      kernel_shape=[smooth_px, smooth_px], strides=[1, 1], pads=[pad] * 4,
                                      count_include_pad=0))
        src = "npusuite_head_smoothed"
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "npusuite_head_channel_axis"))
    nodes.append(helper.make_node("Squeeze", [src, "npusuite_head_channel_axis"], [HEATMAP],
                                  name="npusuite_head_squeeze"))
    nodes.append(helper.make_node("ReduceMax", [HEATMAP], [SCORE], name="npusuite_head_max", axes=[1, 2],
                                  keepdims=0))
    graph.node.extend(nodes)
    graph.output.extend([helper.make_tensor_value_info(HEATMAP, TensorProto.FLOAT, ["batch", None, None]),
                         helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, ["batch"])])
    del model.metadata_props[:]
    model.metadata_props.add(key=SMOOTH_KEY, value=str(smooth_px))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _head_smooth_px(path: Path) -> int | None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return int(meta[SMOOTH_KEY]) if SMOOTH_KEY in meta else None


def _inspect_all(inspector, frames: list, batch: int = 32) -> list:
    out = []
    for i in range(0, len(frames), batch):
        out.extend(inspector.inspect_batch(frames[i:i + batch]))
    return out


def compare(reference: list, candidate: list, threshold: float, tolerance: float) -> Parity:
    """Parity of two inspectors' results on the same frames (same order)."""
    heat = max(float(np.abs(a.heatmap - b.heatmap).max()) for a, b in zip(reference, candidate, strict=True))
    score = max(abs(a.score - b.score) for a, b in zip(reference, candidate, strict=True))
    mismatches, borderline = [], []
    for a, b in zip(reference, candidate, strict=True):
        if a.defective != b.defective:
            (borderline if abs(a.score - threshold) <= tolerance else mismatches).append(a.frame.name)
    same = sum(a.defective == b.defective for a, b in zip(reference, candidate, strict=True))
    return Parity(images=len(reference), max_heat_diff=heat, max_score_diff=float(score), same_verdicts=same,
                  mismatches=mismatches, borderline=borderline)


def quality(results: list, defective: list[bool]) -> Quality:
    bad = [r.defective for r, d in zip(results, defective, strict=True) if d]
    good = [r.defective for r, d in zip(results, defective, strict=True) if not d]
    return Quality(good=len(good), defects=len(bad), recall=float(np.mean(bad)) if bad else float("nan"),
                   false_reject_rate=float(np.mean(good)) if good else float("nan"))


#: ORT optimisation level for the int8 graph (rule 5).  At ALL, ORT's NHWC layout transformer wraps each
#: QLinearConv in transposes and the fp32 convs in NCHWc reorders; for these few-channel nets that costs more
#: than it saves (measured with ORT's profiler on the 128 px student: EXTENDED is about 1.15x faster than ALL).
INT8_OPTIMIZATION = "extended"
#: op types quantised.  Not ``Resize``: ORT's uint8 nearest Resize was the second-largest node in the int8
#: profile (slower than the fp32 one it replaced).
INT8_OP_TYPES = ("Conv", "Concat", "MaxPool", "Relu")


def int8_float_nodes(graph) -> list[str]:
    """The first and the last ``Conv`` of ``graph`` (topological order), kept fp32 by :func:`quantize_int8`: the
    first has 3 input channels (int8 im2col with K = 27 was slower than fp32 and is where the input's dynamic
    range is widest), the last is the 1-output-channel head whose logits set the threshold decision."""
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    return sorted({convs[0], convs[-1]}) if convs else []


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray, input_name: str,
                  engine: str = "onnxruntime") -> None:
    """ONNX Runtime static int8 quantisation calibrated on ``calibration`` (N x 3 x H x W float in [0, 1]).

    Recipe (rule 5; each choice measured against the previous QDQ-everything recipe on the 128 px student):
    QOperator format (QLinearConv nodes, no QDQ pairs left for ORT to fuse), uint8 activations and per-channel
    int8 weights (U8S8: AVX-512 VNNI's ``vpdpbusd`` multiplies u8 by s8 natively), MinMax calibration, only
    :data:`INT8_OP_TYPES`, and :func:`int8_float_nodes` left in fp32.  Run it at :data:`INT8_OPTIMIZATION`.

    ``engine="openvino"``: the graph OpenVINO runs in int8 (it reads QDQ pairs, not QOperator nodes): QDQ format,
    the same types and calibration, everything quantised but the output conv's weights (the 1-channel conv
    whose logits set the threshold decision keeps float weights; its input is still quantised).  Measured on
    the 128 px student (AVX-512 VNNI, one thread, the net alone): 767 frames/s against 467 with
    :data:`INT8_OP_TYPES` and both end convs in float, and 327 for ONNX Runtime fp32.

    A graph with the fused scoring head (rule 2) has the head stripped first (``onnx.utils.extract_model``
    up to ``logits``); the quantised net gets the same head back, in float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    smooth_px = _head_smooth_px(fp32_path)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(fp32_path)
        if smooth_px is not None:
            source = Path(tmp) / "net.onnx"
            onnx.utils.extract_model(str(fp32_path), str(source), [input_name], ["logits"])
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        keep_float = int8_float_nodes(onnx.load(str(prepared)).graph)
        if engine == "openvino":
            recipe = {"quant_format": QuantFormat.QDQ, "nodes_to_exclude": keep_float[-1:]}
        else:
            recipe = {"quant_format": QuantFormat.QOperator, "op_types_to_quantize": list(INT8_OP_TYPES),
                      "nodes_to_exclude": keep_float}
        quantize_static(str(prepared), str(out_path), Reader(), per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, **recipe)
    if smooth_px is not None:
        add_heatmap_head(out_path, smooth_px)


def atc_recipe(onnx_name: str, out_stem: str, size_px: list[int], input_name: str, op_types: list[str],
               soc_version: str, precision: str) -> AtcRecipe:
    """The ``atc`` command that builds a 310B ``.om`` from the exported graph (run from the model folder)."""
    width, height = size_px
    shape = f"{input_name}:-1,3,{height},{width}"
    batches = ",".join(str(b) for b in OM_BATCHES)
    mode = OM_PRECISION_MODES[precision]
    command = ["atc", f"--model={onnx_name}", "--framework=5", f"--output={out_stem}", f"--soc_version={soc_version}",
               "--input_format=NCHW", f"--input_shape={shape}", f"--dynamic_batch_size={batches}",
               f"--precision_mode={mode}", "--log=error"]
    unchecked = sorted(set(op_types) - ATC_KNOWN_OPS)
    return AtcRecipe(command=command, soc_version=soc_version, input_shape=shape, dynamic_batch_size=batches,
                     precision_mode=mode, op_types=sorted(set(op_types)), unchecked_ops=unchecked,
                     note="written, not run: the CANN toolkit's atc is not on PATH here; opset and operator "
                          "types were checked against CANN's ONNX operator list on paper")


def _write_atc(folder: Path, recipe: AtcRecipe) -> AtcRecipe:
    om = folder / "om"
    om.mkdir(exist_ok=True)
    script = ("#!/bin/sh\n# Build the Ascend 310B offline model (needs the CANN toolkit's atc; "
              "run from the model folder).\nset -e\nmkdir -p om\n" + shlex.join(recipe.command) + "\n")
    (om / "atc.sh").write_text(script)
    (om / "atc.sh").chmod(0o755)
    atc = shutil.which("atc")
    if atc is not None:
        import subprocess

        proc = subprocess.run(recipe.command, cwd=folder, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise UserError(f"atc failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}")
        recipe = recipe.model_copy(update={"ran": True, "note": f"built by {atc}"})
    (om / "atc.json").write_text(recipe.model_dump_json(indent=2) + "\n")
    return recipe


def _export_role(src: Path, out: Path, cfg: ExportConfig, role: str) -> RoleExport:
    import onnx

    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.modelcard import CALIBRATION, CARD, LoadedModel, load
    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.modules import read_config
    from npusuite.platform.runtime.onnx_runtime import ONNX_FILE, OnnxInfo, OnnxModule, write_info

    loaded = load(src)
    spec = read_config(loaded.path)
    in_spec = (spec.get("inputs") or [{"name": "image", "datatype": "FP32"}])[0]
    width, height = loaded.card.size_px
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    export_onnx(loaded.net, out / ONNX_FILE, loaded.card.size_px, in_spec["name"], "logits")
    add_heatmap_head(out / ONNX_FILE, loaded.card.smooth_px)
    seconds = time.perf_counter() - t0
    smooth_grow = 1 if loaded.card.smooth_px > 1 and loaded.card.smooth_px % 2 == 0 else 0
    info = OnnxInfo(inputs=[{"name": in_spec["name"], "datatype": "FP32", "shape": [-1, 3, height, width]}],
                    outputs=[{"name": "logits", "datatype": "FP32", "shape": [-1, 1, height, width]},
                             {"name": HEATMAP, "datatype": "FP32",
                              "shape": [-1, height + smooth_grow, width + smooth_grow]},
                             {"name": SCORE, "datatype": "FP32", "shape": [-1]}],
                    opset=OPSET, exporter=f"torch.onnx (TorchScript) from {type(loaded.net).__name__}")
    for name in (CARD, CALIBRATION):
        if (loaded.path / name).is_file():
            shutil.copy2(loaded.path / name, out / name)

    cpu = get_device("cpu")
    onnx_net = OnnxModule(out / ONNX_FILE, cpu, info=info)
    sample = load_samples(cfg.images, loaded.path / CALIBRATION)
    reference = _inspect_all(Inspector(loaded), sample.frames)
    exported = _inspect_all(Inspector(LoadedModel(onnx_net, loaded.card, loaded.ref, out, "fp32")), sample.frames)
    parity = compare(reference, exported, loaded.card.threshold, cfg.max_heat_diff)
    logger.info("%s parity on %d images: max heatmap diff %.2e, %d/%d same verdicts (%d borderline)", role,
                parity.images, parity.max_heat_diff, parity.same_verdicts, parity.images, len(parity.borderline))
    if parity.max_heat_diff > cfg.max_heat_diff or parity.mismatches:
        raise UserError(f"{role}: the ONNX graph disagrees with torch (max heatmap diff {parity.max_heat_diff:.2e}, "
                        f"limit {cfg.max_heat_diff:.0e}; verdicts differ on {parity.mismatches[:3]}); not exported")
    result = RoleExport(role=role, onnx=ONNX_FILE, bytes=(out / ONNX_FILE).stat().st_size,
                        export_seconds=round(seconds, 2), parity=parity)

    if cfg.int8 and role == "student":
        result.int8 = _int8(out, loaded, info, onnx_net, exported, sample, cfg)
        if result.int8.kept:
            info.variants["int8"] = INT8_FILE
            if cfg.int8_engine == "openvino":
                info.engines["int8"] = "openvino"
            else:
                info.optimization["int8"] = INT8_OPTIMIZATION
    if cfg.bf16 and role == "student":
        result.bf16 = _bf16(out, loaded, info, onnx_net, reference, exported, sample, cfg)
        if result.bf16.kept:
            info.variants["bf16"] = ONNX_FILE
            info.engines["bf16"] = "openvino"
    write_info(out, info)
    if cfg.format == "om":
        op_types = [n.op_type for n in onnx.load(str(out / ONNX_FILE)).graph.node]
        recipe = atc_recipe(ONNX_FILE, f"om/{role}", loaded.card.size_px, in_spec["name"], op_types,
                            cfg.soc_version, cfg.om_precision)
        result.atc = _write_atc(out, recipe)
    return result


def _int8(out: Path, loaded, info, onnx_net, exported: list, sample: Sample, cfg: ExportConfig) -> Int8Decision:
    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.modelcard import LoadedModel
    from npusuite.inspection.samples import calibration_batch
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    engine = cfg.int8_engine
    if engine == "openvino":
        from npusuite.platform.runtime.openvino_session import capabilities, supports

        if not supports("int8"):
            offered = ", ".join(capabilities()) or "no OpenVINO"
            return Int8Decision(kept=False, reason=f"this CPU has no int8 in OpenVINO ({offered}); not evaluated",
                                engine=engine)
    # the nets' input: float N x 3 x H x W in [0, 1], from the stored good images
    calib = calibration_batch(loaded.path)
    candidate = out / INT8_FILE
    quantize_int8(out / info.variants["fp32"], candidate, calib, info.inputs[0].name, engine)
    int8_net = (OnnxModule(candidate, onnx_net.device, info=info, precision="int8", engine="openvino")
                if engine == "openvino" else
                OnnxModule(candidate, onnx_net.device, info=info, optimization=INT8_OPTIMIZATION))
    results = _inspect_all(Inspector(LoadedModel(int8_net, loaded.card, loaded.ref, out, "int8")), sample.frames)
    q32, q8 = quality(exported, sample.defective), quality(results, sample.defective)
    parity = compare(exported, results, loaded.card.threshold, cfg.max_heat_diff)
    if not q32.defects:
        kept, reason = False, "no defect images under --images: recall cannot be checked"
    else:
        drop = abs(q32.recall - q8.recall)
        kept = drop <= cfg.max_recall_drop + 1e-12
        reason = (f"recall at the calibrated threshold {q8.recall:.2%} vs fp32 {q32.recall:.2%} "
                  f"({drop * 100:.2f} points; limit {cfg.max_recall_drop * 100:.1f})")
    if not kept:
        candidate.unlink()
    logger.info("int8 student (%s) %s: %s", engine, "kept" if kept else "dropped", reason)
    return Int8Decision(kept=kept, reason=reason, fp32=q32, int8=q8, parity=parity, engine=engine)


def _bf16(out: Path, loaded, info, onnx_net, reference: list, exported: list, sample: Sample,
          cfg: ExportConfig) -> Bf16Decision:
    """Rule 6: the fp32 graph on OpenVINO at bf16, kept only if torch's verdicts and the fp32 recall hold."""
    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.modelcard import LoadedModel
    from npusuite.inspection.samples import calibration_frames
    from npusuite.platform.runtime.onnx_runtime import ONNX_FILE, OnnxModule
    from npusuite.platform.runtime.openvino_session import capabilities, supports

    if not supports("bf16"):
        offered = ", ".join(capabilities()) or "no OpenVINO"
        return Bf16Decision(kept=False, reason=f"this CPU has no bf16 in OpenVINO ({offered}); not evaluated")
    bf16 = Inspector(LoadedModel(OnnxModule(out / ONNX_FILE, onnx_net.device, info=info, precision="bf16",
                                            engine="openvino"), loaded.card, loaded.ref, out, "bf16"))
    fp32 = Inspector(LoadedModel(onnx_net, loaded.card, loaded.ref, out, "fp32"))
    results = _inspect_all(bf16, sample.frames)
    q32, q16 = quality(exported, sample.defective), quality(results, sample.defective)
    parity = compare(reference, results, loaded.card.threshold, cfg.max_heat_diff)
    drop = abs(q32.recall - q16.recall) if q32.defects else float("nan")
    held = calibration_frames(out) if (out / "calibration.safetensors").is_file() else []
    held32, held16 = _inspect_all(fp32, held), _inspect_all(bf16, held)
    frr32 = float(np.mean([r.defective for r in held32])) if held else float("nan")
    frr16 = float(np.mean([r.defective for r in held16])) if held else float("nan")
    held_diff = max((abs(a.score - b.score) for a, b in zip(held32, held16, strict=True)), default=float("nan"))
    if not q32.defects:
        kept, reason = False, "no defect images under --images: recall cannot be checked"
    elif parity.mismatches:
        kept, reason = False, (f"verdicts differ from torch on {len(parity.mismatches)} image(s) clear of the "
                               f"threshold, e.g. {parity.mismatches[:3]}")
    elif held and frr16 > frr32:
        kept, reason = False, (f"rejects {frr16:.1%} of the calibration images against fp32's {frr32:.1%}: the "
                               f"card's threshold does not hold at bf16")
    else:
        kept = drop <= cfg.max_recall_drop + 1e-12
        reason = (f"{parity.same_verdicts}/{parity.images} verdicts as torch (max heatmap diff "
                  f"{parity.max_heat_diff:.1e}); recall at the calibrated threshold {q16.recall:.2%} vs fp32 "
                  f"{q32.recall:.2%} ({drop * 100:.2f} points; limit {cfg.max_recall_drop * 100:.1f}); "
                  f"calibration images rejected {frr16:.1%} vs {frr32:.1%} (max score diff {held_diff:.3f})")
    logger.info("bf16 student (OpenVINO) %s: %s", "kept" if kept else "dropped", reason)
    return Bf16Decision(kept=kept, reason=reason, fp32=q32, bf16=q16, parity=parity, calibration_frr_fp32=frr32,
                        calibration_frr_bf16=frr16, calibration_max_score_diff=held_diff)


def export(model: str | Path, out: Path, cfg: ExportConfig = ExportConfig()) -> ExportReport:
    """Export the student at ``model`` (a model folder or ``name[@version]`` ref) and, with ``cfg.teacher``,
    its ``teacher/``.  Writes ``out`` (see the module docstring); returns the report."""
    from npusuite.inspection.modelcard import load

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new folder")
    src = load(model).path
    if cfg.teacher and not (src / "teacher").is_dir():
        raise UserError(f"{src} has no teacher/ folder to export")
    try:
        student = _export_role(src, out, cfg, "student")
        teacher = _export_role(src / "teacher", out / "teacher", cfg, "teacher") if cfg.teacher else None
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written model folder behind
        raise
    report = ExportReport(source=str(src), format=cfg.format, opset=OPSET,
                          images=str(cfg.images) if cfg.images else "calibration images",
                          student=student, teacher=teacher)
    (out / REPORT).write_text(report.model_dump_json(indent=2) + "\n")
    return report
