"""Level b: sampled per-layer forward time of a torch model, through forward hooks.

:class:`LayerSampler` wraps a predict function.  On one call in ``every``
(default 100) it registers a forward pre-hook and hook on each top-level
child of the module, runs the call, removes the hooks and reports each
child's seconds; the other calls run untouched (no hooks at all), so the
cost is the hooks' overhead on 1 % of the batches.  On CUDA the hooks
synchronise the device so a layer's time is its own (on the sampled call
only).  A module that refuses hooks (a TorchScript module) disables the
sampler with one log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_EVERY = 100


class LayerSampler:
    def __init__(self, module, record: Callable[[str, float], None], every: int = DEFAULT_EVERY) -> None:
        self.module = module
        self.record = record
        self.every = every
        self.calls = 0
        self.sampled = 0
        children = list(module.named_children())
        self.layers = children or [(type(module).__name__, module)]
        self._sync = _device_sync(module)

    def __call__(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        self.calls += 1
        if self.every <= 0 or self.calls % self.every:
            return fn(*args, **kwargs)
        starts: dict[str, float] = {}
        spent: dict[str, float] = {}
        handles = []
        try:
            for name, layer in self.layers:
                handles.append(layer.register_forward_pre_hook(self._pre(name, starts)))
                handles.append(layer.register_forward_hook(self._post(name, starts, spent)))
        except (RuntimeError, AttributeError) as exc:
            for h in handles:
                h.remove()
            logger.info("per-layer timing off for %s: %s", type(self.module).__name__, exc)
            self.every = 0
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()
            self.sampled += 1
            for name, seconds in spent.items():
                self.record(name, seconds)

    def _pre(self, name: str, starts: dict[str, float]):
        def hook(_module, _inputs):
            self._sync()
            starts[name] = time.perf_counter()
        return hook

    def _post(self, name: str, starts: dict[str, float], spent: dict[str, float]):
        def hook(_module, _inputs, _output):
            self._sync()
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - starts.pop(name, time.perf_counter())
        return hook


def _device_sync(module) -> Callable[[], None]:
    try:
        param = next(module.parameters())
    except (StopIteration, AttributeError, TypeError):
        return lambda: None
    if param.device.type == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def torch_module(runtime) -> Any | None:
    """The runtime's ``torch.nn.Module`` (tensor runtimes), or None (ONNX Runtime, anything else)."""
    module = getattr(runtime, "module", None)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return module if isinstance(module, torch.nn.Module) else None
