"""ONNX models: a model folder holding ``model.onnx``, run by ONNX Runtime.

Layout of an ONNX model folder (what ``npusuite inspection export`` writes)::

    model.onnx          the graph, fp32, dynamic batch axis
    model.int8.onnx     (optional) the same graph statically quantised to int8
    onnx.json           :class:`OnnxInfo`: input/output tensor specs, the precision variants, each variant's
                        graph optimisation level, the exporter

Rules:

* The folder selects this runtime: :func:`describe` says ``kind="onnx"`` for a
  folder with ``model.onnx`` (the repository's ``describe_source`` asks it
  first), and :func:`load_onnx` is the loader registered for that kind.
* Execution providers follow the device class, never a string of the
  caller's: ``cpu`` -> ``CPUExecutionProvider``; ``cuda`` ->
  ``CUDAExecutionProvider``; ``npu`` -> ``CANNExecutionProvider`` (the
  ``onnxruntime-cann`` build for Ascend).  When the provider the device
  needs is not in this onnxruntime build, :class:`DeviceUnavailableError`
  says which package brings it; there is no silent fall-back to the CPU.
  Only the CPU provider is exercised on this project's test machines; the
  CUDA/CANN branches are checked on paper (provider names and options as
  ONNX Runtime documents them).
* A corrupt, truncated or hostile ``model.onnx`` is refused with
  :class:`CorruptModelError` naming the file (ONNX Runtime's parse error is
  caught, never propagated as a crash).  External-data files are not
  followed (the session is created from bytes), so a graph cannot make the
  runtime read files outside its folder.
* Sessions use sequential execution, ``intra_op_threads`` threads (0 =
  ONNX Runtime's default, the physical cores) and the graph optimisation
  level ``onnx.json`` names for the variant (``optimization``: ``basic``,
  ``extended`` or ``all``; default ``all``).  A level is per variant
  because the exporter measures it: ORT's layout transformers (level
  ``all``) speed up an fp32 graph and can slow down an int8 one.
* Engines: every variant runs on ONNX Runtime unless ``onnx.json``'s
  ``engines`` names ``"openvino"`` for it
  (:mod:`npusuite.platform.runtime.openvino_session`): the ``bf16`` variant is
  the fp32 ``model.onnx`` compiled by OpenVINO at bf16 on a CPU with AMX, which
  ONNX Runtime's CPU provider cannot do; an ``int8`` variant may be a QDQ
  graph written for OpenVINO, which runs its convolutions on VNNI/AMX.  A
  module's ``precision`` is its variant's name, read from ``onnx.json``, not
  guessed from the file name.
* :class:`OnnxModule` is callable like the torch module it replaces
  (``torch.Tensor`` in, ``torch.Tensor`` out, first input / first output),
  so apps that run ``runtime.module`` directly keep one post-processing path.
  :meth:`OnnxModule.outputs` is the numpy path: named outputs for one
  float32 input array, no torch involved (apps whose graphs carry their own
  post-processing use it; see ``npusuite.inspection.export``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ValidationError

from npusuite.platform.errors import UserError
from npusuite.platform.repository.manifest import CorruptModelError, TensorSpec
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.devices import Device, DeviceUnavailableError

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
#: onnx.json's optimisation names -> ORT's GraphOptimizationLevel member names
OPTIMIZATION_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
INFO_FILE = "onnx.json"
#: largest graph a folder may hold (the inspection student is well under 1 MB; a teacher a few MB)
MAX_ONNX_BYTES = 512 * 1024 * 1024

#: device kind -> (execution provider, the package that brings it)
PROVIDERS: dict[str, tuple[str, str]] = {
    "cpu": ("CPUExecutionProvider", "onnxruntime"),
    "cuda": ("CUDAExecutionProvider", "onnxruntime-gpu"),
    "npu": ("CANNExecutionProvider", "onnxruntime-cann"),
}


class OnnxInfo(BaseModel):
    """``onnx.json``: what the graph takes and gives, and which precision variants the folder holds."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: precision -> file in the folder ("fp32" is always ``model.onnx``)
    variants: dict[str, str] = {"fp32": ONNX_FILE}
    #: precision -> ORT graph optimisation level for that variant (absent: "all")
    optimization: dict[str, Literal["basic", "extended", "all"]] = {}
    #: precision -> the engine that runs the variant (absent: "onnxruntime"); "openvino" for "bf16"
    engines: dict[str, Literal["onnxruntime", "openvino"]] = {}
    opset: int | None = None
    exporter: str | None = None


def read_info(folder: Path) -> OnnxInfo:
    """Read ``onnx.json``.  Raises CorruptModelError when missing or malformed."""
    path = Path(folder) / INFO_FILE
    try:
        info = OnnxInfo.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CorruptModelError(f"{folder}: {ONNX_FILE} without {INFO_FILE}") from None
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise CorruptModelError(f"{path}: unreadable: {str(exc).splitlines()[0]}") from None
    for precision, name in info.variants.items():
        if Path(name).name != name or not name.endswith(".onnx"):
            raise CorruptModelError(f"{path}: variant {precision!r} names {name!r}; variants are .onnx files "
                                    f"in the folder itself")
    for precision, engine in info.engines.items():
        if precision not in info.variants:
            raise CorruptModelError(f"{path}: engines names {precision!r}, which is not one of its variants")
        if engine == "openvino" and precision not in ("fp32", "bf16", "int8"):
            raise CorruptModelError(f"{path}: OpenVINO runs a variant at fp32, bf16 or int8 (a QDQ graph), not "
                                    f"{precision!r}")
    if "bf16" in info.variants and info.engines.get("bf16") != "openvino":
        raise CorruptModelError(f"{path}: a bf16 variant runs on OpenVINO (engines: {{\"bf16\": \"openvino\"}}); ONNX "
                                f"Runtime's CPU provider has no bf16 mode for an fp32 graph")
    return info


def write_info(folder: Path, info: OnnxInfo) -> None:
    (Path(folder) / INFO_FILE).write_text(info.model_dump_json(indent=2) + "\n")


def describe(folder: Path) -> dict[str, Any] | None:
    """Manifest fields for an ONNX model folder (None: not one)."""
    if not (Path(folder) / ONNX_FILE).is_file():
        return None
    info = read_info(folder)
    return {"kind": "onnx", "framework": "onnxruntime",
            "inputs": [s.model_dump() for s in info.inputs], "outputs": [s.model_dump() for s in info.outputs]}


def providers_for(device: Device) -> list[str]:
    """The execution providers for ``device``'s class.  Raises DeviceUnavailableError when this onnxruntime
    build lacks the one it needs."""
    import onnxruntime as ort

    try:
        provider, package = PROVIDERS[device.kind]
    except KeyError:
        raise DeviceUnavailableError(f"no ONNX Runtime execution provider for device {device.kind!r} "
                                     f"(known: {', '.join(PROVIDERS)})") from None
    available = ort.get_available_providers()
    if provider not in available:
        raise DeviceUnavailableError(f"device {device.name} runs ONNX models with {provider}, which this onnxruntime "
                                     f"build lacks (has {', '.join(available)}); install {package}")
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


def _provider_options(device: Device) -> list[dict[str, Any]]:
    index = device.index or 0
    if device.kind == "cuda":
        return [{"device_id": index}, {}]
    if device.kind == "npu":
        # ONNX Runtime's CANN provider options; precision_mode keeps fp32 graphs in fp32 unless the op lacks it
        return [{"device_id": index, "precision_mode": "allow_fp32_to_fp16"}, {}]
    return [{}]


def open_session(path: Path, device: Device, intra_op_threads: int = 0, optimization: str = "all"):
    """An ``InferenceSession`` for the graph at ``path`` on ``device`` at graph optimisation level
    ``optimization`` (:data:`OPTIMIZATION_LEVELS`).  Raises CorruptModelError for a graph ONNX Runtime cannot
    load, DeviceUnavailableError for a missing provider."""
    import onnxruntime as ort

    providers = providers_for(device)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptModelError(f"{path.parent}: {path.name} is missing") from None
    if size > MAX_ONNX_BYTES:
        raise CorruptModelError(f"{path}: {size} bytes is over the {MAX_ONNX_BYTES}-byte limit for a graph")
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; a refused graph is reported by us, in one line
    try:
        # from bytes: external-data references cannot point the runtime at files outside the folder
        session = ort.InferenceSession(path.read_bytes(), sess_options=options, providers=providers,
                                       provider_options=_provider_options(device)[:len(providers)])
    except Exception as exc:  # onnxruntime raises its own (pybind) types: InvalidProtobuf, Fail, InvalidGraph...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptModelError(f"{path}: ONNX Runtime cannot load it: {reason[:300]}") from None
    logger.info("opened %s on %s (%s, optimisation %s)", path.name, device.name, ", ".join(session.get_providers()),
                optimization)
    return session


@dataclass
class OnnxModule:
    """One ONNX graph on one device, callable like the torch module it was exported from."""

    path: Path
    device: Device
    intra_op_threads: int = 0
    info: OnnxInfo | None = None
    #: graph optimisation level; None: the one ``info`` names for this file's variant, else "all"
    optimization: str | None = None
    #: the variant's name; None: the first of ``info``'s variants held in this file, else fp32 for
    #: ``model.onnx`` and int8 for any other file
    precision: str | None = None
    #: "onnxruntime" or "openvino"; None: what ``info`` names for the variant, else "onnxruntime"
    engine: str | None = None
    session: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        variants = self.info.variants if self.info else {}
        if self.precision is None:
            held = next((p for p, f in variants.items() if f == self.path.name), None)
            self.precision = held or ("fp32" if self.path.name == ONNX_FILE else "int8")
        known = self.info is not None and self.precision in variants
        if self.optimization is None:
            self.optimization = self.info.optimization.get(self.precision, "all") if known else "all"
        if self.engine is None:
            self.engine = self.info.engines.get(self.precision, "onnxruntime") if known else "onnxruntime"
        if self.precision == "bf16" and self.engine != "openvino":
            raise UserError(f"{self.path}: bf16 runs on OpenVINO, not {self.engine}")
        if self.engine == "openvino":
            from npusuite.platform.runtime.openvino_session import OpenVinoSession

            self.session = OpenVinoSession(self.path, self.device, self.precision, self.intra_op_threads)
        elif self.engine == "onnxruntime":
            self.session = open_session(self.path, self.device, self.intra_op_threads, self.optimization)
        else:
            raise UserError(f"{self.path}: unknown engine {self.engine!r} (onnxruntime or openvino)")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs, strict=True))

    def has_outputs(self, *names: str) -> bool:
        return all(n in self.output_names for n in names)

    def outputs(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """The outputs ``names`` for ``x`` as the first input (float32, C-contiguous), as numpy arrays."""
        return self.session.run(names, {self.input_names[0]: x})

    def __call__(self, x):
        """First input -> first output, for torch tensors (the torch module's calling convention)."""
        import torch

        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        out = self.session.run(self.output_names[:1], {self.input_names[0]: np.ascontiguousarray(arr, np.float32)})
        return torch.from_numpy(out[0])

    def eval(self) -> OnnxModule:
        return self

    @classmethod
    def open_variant(cls, folder: Path, device: Device, precision: str, intra_op_threads: int = 0,
                     info: OnnxInfo | None = None) -> OnnxModule:
        """The folder's ``precision`` variant (``onnx.json``).  Raises UserError when the folder holds none."""
        info = info or read_info(folder)
        name = info.variants.get(precision)
        if name is None:
            hint = f"; export it with `inspection export --{precision}`" if precision in ("int8", "bf16") else ""
            raise UserError(f"{folder} holds no {precision} ONNX graph (has {', '.join(sorted(info.variants))})"
                            f"{hint}")
        return cls(Path(folder) / name, device, intra_op_threads, info, precision=precision)

    def variant(self, precision: str) -> OnnxModule:
        """The same model at another precision, from the folder's ``onnx.json`` variants.  Raises UserError."""
        if precision == self.precision:
            return self
        return OnnxModule.open_variant(self.path.parent, self.device, precision, self.intra_op_threads, self.info)


class OnnxServable:
    """An ONNX model behind named numpy tensors: the :class:`~.protocols.TensorRuntime` for ``kind="onnx"``."""

    def __init__(self, module: OnnxModule, version: ModelVersion) -> None:
        self.module = module
        self.version = version
        self.device = module.device
        self.inputs = version.manifest.inputs or []
        self.outputs = version.manifest.outputs or []
        self.memory_bytes = module.path.stat().st_size

    def validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from npusuite.platform.runtime.servable import validate_inputs

        return validate_inputs(self.inputs, self.version.ref, inputs)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.module.input_names
        missing = [n for n in names if n not in inputs]
        if missing:
            raise UserError(f"missing input tensor(s) {missing}; {self.version.ref} takes {names}")
        return self.module.run({n: np.ascontiguousarray(inputs[n]) for n in names})

    def warmup(self) -> None:
        from npusuite.platform.runtime.servable import example_inputs

        if self.inputs:
            self.predict(example_inputs(self.inputs))

    def close(self) -> None:
        self.module = None


def load_onnx(version: ModelVersion, device: Device, intra_op_threads: int = 0) -> OnnxServable:
    """The loader for ``kind="onnx"``: the manifest's precision picks the variant (fp32 -> ``model.onnx``)."""
    module = OnnxModule.open_variant(version.path, device, version.manifest.precision, intra_op_threads)
    return OnnxServable(module, version)
