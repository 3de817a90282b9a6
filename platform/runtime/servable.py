"""What a loaded model version looks like to the engine, and how a version is loaded.

Rules:
- A tensor model is a :class:`TensorServable`: ``predict`` takes named numpy
  arrays whose first axis is the batch, and returns named arrays with the same
  first axis.  The batcher concatenates requests along that axis.
- An ONNX model (a folder with ``model.onnx``, ``kind="onnx"``) is an
  :class:`~npusuite.platform.runtime.onnx_runtime.OnnxServable`: the same
  tensor contract, run by ONNX Runtime with the device class's execution provider.
- A causal LM is served by a :class:`~npusuite.platform.runtime.causal_lm.CausalLM`
  and driven by the LLM scheduler, not by ``predict``.  Both satisfy the
  Protocols of :mod:`.protocols` (``TensorRuntime`` / ``GenerativeRuntime``).
- A ``data`` version (files an app reads itself, e.g. an analysts' rule set)
  is a :class:`DataServable`: nothing is loaded; its app adapter reads the
  version's folder, so data hot-swaps through aliases like a model.
- :func:`load_version` picks the runtime from ``manifest.kind`` (a registry,
  not a chain of ifs) and never changes anything already serving; a failure
  raises (CorruptModelError / UserError) and leaves the caller's old version alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.devices import Device, get_device
from npusuite.platform.runtime.protocols import Runtime

logger = logging.getLogger(__name__)

_DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
           "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


def _castable(src: np.dtype, dst: np.dtype) -> bool:
    """Same kind (int->int, float->float) or integer -> float; never bool <-> number."""
    kinds = {"i": "iu", "u": "iu", "f": "iuf", "b": "b"}
    return src.kind in kinds.get(dst.kind, dst.kind)


def validate_inputs(specs, ref: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check names, datatypes and fixed dimensions of ``inputs`` against the manifest's ``specs``.

    Returns the inputs cast to the declared dtype where that is lossless (e.g. INT32 -> FP32 data
    from a JSON client).  Raises UserError naming the first bad tensor.  Shared by every tensor runtime.
    """
    if not specs:
        return inputs
    out = {}
    for spec in specs:
        arr = inputs.get(spec.name)
        if arr is None:
            raise UserError(f"missing input tensor {spec.name!r}; {ref} takes {[s.name for s in specs]}")
        want = _DTYPES.get(spec.datatype)
        if want is not None and arr.dtype != want:
            if not _castable(arr.dtype, np.dtype(want)):
                raise UserError(f"input {spec.name!r}: datatype {arr.dtype} where {spec.datatype} is expected")
            arr = arr.astype(want)
        dims = list(spec.shape)
        if len(dims) != arr.ndim or any(d >= 0 and d != a for d, a in zip(dims[1:], arr.shape[1:], strict=False)):
            raise UserError(f"input {spec.name!r}: shape {list(arr.shape)} does not match {dims} (-1 = any)")
        out[spec.name] = arr
    unknown = sorted(set(inputs) - set(out))
    if unknown:
        raise UserError(f"unknown input tensor(s) {unknown}; {ref} takes {sorted(out)}")
    return out


def example_inputs(specs) -> dict[str, np.ndarray]:
    """Zeros of the declared input shapes (batch 1 for -1), for a warm-up call."""
    return {s.name: np.zeros([1 if d < 0 else d for d in s.shape] or [1], dtype=_DTYPES.get(s.datatype, np.float32))
            for s in specs}


class TensorServable:
    """A torch module behind named numpy tensors (KServe v2 style)."""

    def __init__(self, module, version: ModelVersion, device: Device):
        import torch

        self.module = module
        self.version = version
        self.device = device
        self.inputs = version.manifest.inputs or []
        self.outputs = version.manifest.outputs or []
        self._torch = torch
        from npusuite.platform.runtime.causal_lm import module_bytes

        self.memory_bytes = module_bytes(module)

    def validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names, datatypes and fixed dimensions against the manifest (:func:`validate_inputs`)."""
        return validate_inputs(self.inputs, self.version.ref, inputs)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        names = [s.name for s in self.inputs] or sorted(inputs)
        missing = [n for n in names if n not in inputs]
        if missing:
            raise UserError(f"missing input tensor(s) {missing}; {self.version.ref} takes {names}")
        dev = self.device.torch_device()
        with torch.inference_mode():
            args = [torch.from_numpy(np.require(inputs[n], requirements=["C", "W"])).to(dev) for n in names]
            out = self.module(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        if isinstance(out, dict):
            return {k: v.detach().cpu().numpy() for k, v in out.items()}
        out_names = [s.name for s in self.outputs] or [f"output{i}" for i in range(len(out))]
        return {n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
                for n, t in zip(out_names, out, strict=False)}

    def warmup(self) -> None:
        """Run one example of the declared input shapes, so the first real request is not slow."""
        if not self.inputs:
            return
        example = example_inputs(self.inputs)
        self.predict(example)

    def close(self) -> None:
        self.module = None


class DataServable:
    """A ``data`` version: its verified folder, for the app adapter to read (no model, no memory held)."""

    memory_bytes = 0

    def __init__(self, version: ModelVersion):
        self.version = version
        self.path = version.path

    def close(self) -> None:
        pass


def _load_data(version: ModelVersion, device: Device) -> DataServable:
    return DataServable(version)


def _load_torch_module(version: ModelVersion, device: Device):
    from npusuite.platform.runtime.modules import load_module

    dtype = device.dtype_for(version.manifest.precision) if version.manifest.precision != "int8" else None
    module = load_module(version.path, device=device.torch_device(), dtype=dtype)
    if version.manifest.precision == "int8":
        from npusuite.platform.runtime.causal_lm import quantize_int8_weight_only

        quantize_int8_weight_only(module)
    return TensorServable(module, version, device)


def _load_causal_lm(version: ModelVersion, device: Device):
    from npusuite.platform.runtime.causal_lm import CausalLM

    return CausalLM.load(version.path, device, version.manifest.precision, ref=version.ref)


def _load_onnx(version: ModelVersion, device: Device):
    from npusuite.platform.runtime.onnx_runtime import load_onnx

    return load_onnx(version, device)


LOADERS: dict[str, Callable[[ModelVersion, Device], Runtime | DataServable]] = {
    "torch-module": _load_torch_module,
    "onnx": _load_onnx,
    "causal-lm": _load_causal_lm,
    "data": _load_data,
}


def load_version(version: ModelVersion, device: str | Device = "cpu") -> Runtime | DataServable:
    """Load a verified version on ``device``.  Raises UserError (incl. CorruptModelError)."""
    loader = LOADERS.get(version.manifest.kind)
    if loader is None:
        raise UserError(f"{version.ref}: unknown model kind {version.manifest.kind!r} (known: {sorted(LOADERS)})")
    return loader(version, get_device(device))
