"""Devices: one registered class per backend, and the one place that picks a device.

``get_device("cpu" | "cuda[:N]" | "npu[:N]")`` returns a :class:`Device`.
Rules:
- Each backend is a subclass registered with :func:`register_device`; nothing
  else in the suite branches on device strings.
- A device states its dtype defaults: the dtype it uses for ``"auto"``
  precision, and which precisions it supports.
- ``npu`` imports ``torch_npu`` lazily, only when asked for; where it (or the
  hardware) is missing, :class:`DeviceUnavailableError` says so in one line.
  ``cuda`` likewise refuses when torch sees no CUDA device.
- A device states whether a decode step can be captured as a graph:
  :meth:`Device.graph_capture` returns a :class:`GraphCapture` (CUDA graphs on
  ``cuda``, ``torch_npu``'s NPU graphs on ``npu`` where its build has them) or
  None (``cpu``: the step runs eagerly).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import ClassVar

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[Device]] = {}


class DeviceUnavailableError(UserError):
    """The requested device type is unknown, or its runtime/hardware is missing here."""


def register_device(kind: str):
    def deco(cls: type[Device]) -> type[Device]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls
    return deco


class GraphCapture:
    """Capture a function as a device graph and replay it (``torch.cuda.CUDAGraph`` and its NPU twin).

    ``capture(fn)`` warms ``fn`` up on a side stream (allocator and kernel
    choices settle there, as PyTorch's graph docs require), records one call,
    and returns ``replay``: a function that reruns the recorded kernels on the
    same input/output storage and returns ``fn``'s recorded output.  All
    graphs of one instance share a memory pool.  Capture errors propagate: the
    caller falls back to eager.
    """

    def __init__(self, backend, graph_cls, warmup: int = 2):
        self.backend, self.graph_cls, self.warmup, self.pool = backend, graph_cls, warmup, None

    def capture(self, fn: Callable[[], object]) -> Callable[[], object]:
        side = self.backend.Stream()
        side.wait_stream(self.backend.current_stream())
        with self.backend.stream(side):
            for _ in range(self.warmup):
                fn()
        self.backend.current_stream().wait_stream(side)
        graph = self.graph_cls()
        with self.backend.graph(graph, pool=self.pool):
            out = fn()
        self.pool = graph.pool()

        def replay():
            graph.replay()
            return out
        return replay


class Device:
    kind: ClassVar[str] = ""
    #: dtype name used when a model version says nothing more specific.
    default_dtype: ClassVar[str] = "float32"
    #: precisions this backend runs.
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")

    def __init__(self, index: int | None = None):
        self.index = index

    @property
    def name(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    def check(self) -> None:
        """Raise DeviceUnavailableError when this device cannot be used here."""

    def torch_device(self):
        import torch

        return torch.device(self.name)

    def dtype_for(self, precision: str):
        """torch dtype of the weights for a manifest precision (int8 = weight-only, float activations)."""
        import torch

        if precision not in self.precisions:
            raise UserError(f"precision {precision} is not supported on {self.name} (supported: {self.precisions})")
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                "int8": getattr(torch, self.default_dtype)}[precision]

    def synchronize(self) -> None:
        pass

    def memory_allocated_bytes(self) -> int | None:
        return None

    def graph_capture(self) -> GraphCapture | None:
        """How a decode step is captured as a graph here; None: run it eagerly."""
        return None

    def __repr__(self) -> str:
        return f"<Device {self.name}>"


@register_device("cpu")
class CpuDevice(Device):
    precisions = ("fp32", "bf16", "int8")

    @property
    def name(self) -> str:
        return "cpu"


@register_device("cuda")
class CudaDevice(Device):
    default_dtype = "bfloat16"
    precisions = ("fp32", "bf16", "fp16", "int8")

    def check(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise DeviceUnavailableError("cuda requested but torch sees no CUDA device here")
        if self.index is not None and self.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"{self.name} requested but only {torch.cuda.device_count()} CUDA devices")

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.torch_device())

    def memory_allocated_bytes(self) -> int | None:
        import torch

        return int(torch.cuda.memory_allocated(self.torch_device()))

    def graph_capture(self) -> GraphCapture | None:
        import torch

        return GraphCapture(torch.cuda, torch.cuda.CUDAGraph)


@register_device("npu")
class NpuDevice(Device):
    """Ascend NPU through torch_npu (CANN).  Imported only when used."""

    default_dtype = "float16"
    precisions = ("fp32", "bf16", "fp16")

    def check(self) -> None:
        try:
            importlib.import_module("torch_npu")
        except ImportError:
            raise DeviceUnavailableError(
                "npu requested but torch_npu is not installed (pip install 'npusuite[npu]' on a machine "
                "with the Ascend CANN toolkit)") from None
        import torch

        if not torch.npu.is_available():  # type: ignore[attr-defined]
            raise DeviceUnavailableError("npu requested but torch_npu sees no Ascend device here")

    def synchronize(self) -> None:
        import torch

        torch.npu.synchronize()  # type: ignore[attr-defined]

    def graph_capture(self) -> GraphCapture | None:
        import torch

        # torch_npu mirrors torch.cuda's graph API (NPUGraph, torch.npu.graph) in its newer builds only
        graph_cls = getattr(torch.npu, "NPUGraph", None)  # type: ignore[attr-defined]
        return GraphCapture(torch.npu, graph_cls) if graph_cls is not None else None  # type: ignore[attr-defined]


def device_kinds() -> list[str]:
    return sorted(_REGISTRY)


def get_device(spec: str | Device = "cpu", check: bool = True) -> Device:
    """Parse ``kind[:index]`` into a registered Device.  Raises DeviceUnavailableError."""
    if isinstance(spec, Device):
        return spec
    kind, _, index = spec.strip().lower().partition(":")
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise DeviceUnavailableError(f"unknown device {spec!r}; choose one of {', '.join(device_kinds())}")
    if index and not index.isdigit():
        raise DeviceUnavailableError(f"bad device index in {spec!r}")
    device = cls(int(index) if index else None)
    if check:
        device.check()
    return device
