"""OpenVINO as a second engine for the platform's ONNX model folders, on Intel CPUs.

An ONNX model folder (:mod:`npusuite.platform.runtime.onnx_runtime`) is run by
ONNX Runtime unless its ``onnx.json`` names another engine for a precision
variant (``engines``: precision -> ``"openvino"``).  This module is that other
engine: the same ``model.onnx``, read by OpenVINO's ONNX front end and compiled
for its CPU plugin, behind the few methods of ``onnxruntime.InferenceSession``
that :class:`~npusuite.platform.runtime.onnx_runtime.OnnxModule` uses
(``run``, ``get_inputs``, ``get_outputs``, ``get_providers``), so one module
class serves both engines.

Rules:

* Why: on x86 CPUs with AMX (Sapphire Rapids and later) OpenVINO runs the
  convolutions in bf16 on the matrix units, which ONNX Runtime's CPU provider
  does not; for the inspection student this is the precision that reaches the
  edge box's latency budget (docs/inspection.md, "Export").  Anomalib exports
  to OpenVINO for the same reason.
* ``precision`` is the inference precision OpenVINO computes in: ``"f32"`` or
  ``"bf16"``, always set explicitly (OpenVINO's own CPU default is bf16 where
  the CPU has it, which would silently change an fp32 model's numbers).
  ``bf16`` where the CPU lacks it is refused with
  :class:`DeviceUnavailableError`: no silent fall-back to another precision.
* ``int8``: a graph quantised with QuantizeLinear/DequantizeLinear pairs
  (QDQ; ``inspection export --int8 --int8-engine openvino``).  OpenVINO's
  low-precision transformations run each quantised convolution in int8 (VNNI
  on AVX-512 or AVX-VNNI CPUs, AMX where present); what is left unquantised
  computes in f32 (the hint is f32, so nothing silently becomes bf16).  The
  quantisation is in the graph, so an fp32 graph opened as ``int8`` runs in
  f32.  Refused where the CPU plugin offers no ``INT8``.
* CPU only: OpenVINO is offered for the ``cpu`` device class.  CUDA and
  Ascend run ONNX folders through ONNX Runtime's providers.
* A graph whose tensors live in external-data files is refused before
  OpenVINO sees it: read from bytes, OpenVINO still resolves such references
  against the process's working directory (seen while writing this module;
  the test now asserts the refusal), so a graph could
  make it read files outside its folder.  A graph OpenVINO cannot read or
  compile is refused with :class:`CorruptModelError` naming the file, in one
  line.
* Where the ``openvino`` package is missing, :class:`DeviceUnavailableError`
  says to install it (it is a dependency of the suite, so this happens only
  on a trimmed install).
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npusuite.platform.repository.manifest import CorruptModelError
from npusuite.platform.runtime.devices import Device, DeviceUnavailableError

logger = logging.getLogger(__name__)

#: precision variant -> OpenVINO INFERENCE_PRECISION_HINT
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@dataclass(frozen=True)
class IoName:
    """What ``InferenceSession.get_inputs()`` items offer and OnnxModule reads: the tensor's name."""

    name: str


@functools.cache
def _core():
    """One OpenVINO ``Core`` per process (it loads the CPU plugin once)."""
    try:
        import openvino as ov
    except ImportError:
        raise DeviceUnavailableError("this ONNX model variant runs on OpenVINO, which is not installed; "
                                     "pip install openvino") from None
    return ov.Core()


def _reason(exc: Exception) -> str:
    """OpenVINO's messages start with a C++ source location; keep the first line that says something."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from src", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0][:300]


def _refuse_external_data(path: Path, data: bytes) -> None:
    import onnx
    from google.protobuf.message import DecodeError
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        model = onnx.load_from_string(data)  # the graph only: external data is never loaded here
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise CorruptModelError(f"{path}: not an ONNX graph: {_reason(exc)}") from None
    if any(uses_external_data(t) for t in _get_all_tensors(model)):
        raise CorruptModelError(f"{path}: OpenVINO cannot load it: its tensors refer to external-data files, "
                                f"which this runtime does not follow")


def capabilities() -> list[str]:
    """The CPU plugin's optimisation capabilities (``FP32``, ``BF16``, ``INT8``...); [] without openvino."""
    try:
        return list(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except DeviceUnavailableError:
        return []


def supports(precision: str) -> bool:
    """Whether OpenVINO can run ``precision`` (``fp32``/``bf16``/``int8``) on this machine's CPU."""
    want = {"fp32": "FP32", "bf16": "BF16", "int8": "INT8"}.get(precision)
    return want is not None and want in capabilities()


class OpenVinoSession:
    """One ONNX graph compiled by OpenVINO for the CPU; the subset of ``onnxruntime.InferenceSession`` in use."""

    def __init__(self, path: Path, device: Device, precision: str = "fp32", threads: int = 0) -> None:
        if device.kind != "cpu":
            raise DeviceUnavailableError(f"OpenVINO runs ONNX models on the cpu device here, not {device.name}; "
                                         f"use a variant ONNX Runtime runs there (fp32, or an int8 exported for "
                                         f"onnxruntime)")
        if precision not in PRECISION_HINTS:
            raise DeviceUnavailableError(f"OpenVINO precision {precision!r}: one of {', '.join(PRECISION_HINTS)}")
        core = _core()
        if not supports(precision):
            raise DeviceUnavailableError(f"this CPU cannot run {precision} in OpenVINO (it offers "
                                         f"{', '.join(capabilities()) or 'nothing'}); use the fp32 variant")
        from npusuite.platform.runtime.onnx_runtime import MAX_ONNX_BYTES

        try:
            size = path.stat().st_size
            if size > MAX_ONNX_BYTES:
                raise CorruptModelError(f"{path}: {size} bytes is over the {MAX_ONNX_BYTES}-byte limit for a graph")
            data = path.read_bytes()
            _refuse_external_data(path, data)
            model = core.read_model(io.BytesIO(data))
            config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                                      "PERFORMANCE_HINT": "LATENCY"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            self.compiled = core.compile_model(model, "CPU", config)
        except FileNotFoundError:
            raise CorruptModelError(f"{path.parent}: {path.name} is missing") from None
        except RuntimeError as exc:  # OpenVINO raises RuntimeError for parse, conversion and compile failures
            raise CorruptModelError(f"{path}: OpenVINO cannot load it: {_reason(exc)}") from None
        self.precision = precision
        self._inputs = [IoName(p.get_any_name()) for p in self.compiled.inputs]
        self._outputs = [IoName(p.get_any_name()) for p in self.compiled.outputs]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: callers on several threads take turns
        logger.info("opened %s on %s (OpenVINO %s, %s)", path.name, device.name, precision,
                    f"{threads} thread(s)" if threads else "default threads")

    def get_inputs(self) -> list[IoName]:
        return list(self._inputs)

    def get_outputs(self) -> list[IoName]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.precision})"]

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs ``names`` (None: all) for ``feeds`` (input name -> array), as numpy arrays owned by the caller."""
        known = {i.name for i in self._inputs}
        unknown = sorted(set(feeds) - known)
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; the graph takes {sorted(known)}")
        with self._lock:
            results = self._request.infer({n: np.ascontiguousarray(a) for n, a in feeds.items()})
            by_name = {port.get_any_name(): value for port, value in results.items()}
            # the request reuses its output buffers on the next call: copy what leaves
            return [np.array(by_name[n], copy=True) for n in (names or [o.name for o in self._outputs])]
