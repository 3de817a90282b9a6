"""Decode steps on the static KV cache, captured as device graphs where the device can, eager elsewhere.

Rules:
- One step function per bucket of rows (:data:`kv_cache.BUCKETS`), made by
  :meth:`StaticKVCache.step_fn`; it reads only static tensors, so a captured
  graph replays it with new inputs and no Python, allocation or kernel-launch
  cost per layer.
- The device class decides (:meth:`Device.graph_capture`): CUDA graphs on
  ``cuda``, NPU graphs on ``npu`` when ``torch_npu`` has them, none on
  ``cpu``.  Capture happens at a bucket's first use.  A capture that raises
  (an op that syncs with the host, a backend without graph support) is logged
  once and that bucket runs eagerly from then on: the same function, the same
  results, only slower.
- :attr:`DecodeRunner.modes` says how each bucket ran ("graph" or "eager"),
  for tests and benchmarks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from npusuite.platform.runtime.devices import Device, GraphCapture
from npusuite.platform.runtime.kv_cache import StaticKVCache

logger = logging.getLogger(__name__)

__all__ = ["DecodeRunner"]


class DecodeRunner:
    """Runs one decode step for a bucket of slots: a replayed graph, or the eager step."""

    def __init__(self, model, kv: StaticKVCache, device: Device, mask_dtype: torch.dtype,
                 capture: GraphCapture | None = None):
        self.model, self.kv, self.mask_dtype = model, kv, mask_dtype
        #: None: eager everywhere (no graph support here)
        self.capture = capture if capture is not None else device.graph_capture()
        self._steps: dict[int, Callable[[], torch.Tensor]] = {}
        self.modes: dict[int, str] = {}

    def run(self, rows: int) -> torch.Tensor:
        """Logits [rows, vocab] of the step over the first ``rows`` slots (static storage: read before the next)."""
        step = self._steps.get(rows)
        if step is None:
            step = self._steps[rows] = self._make(rows)
        return step()

    def _make(self, rows: int) -> Callable[[], torch.Tensor]:
        eager = self.kv.step_fn(self.model, rows, self.mask_dtype)
        if self.capture is None:
            self.modes[rows] = "eager"
            return eager
        try:
            replay = self.capture.capture(eager)
        except Exception as exc:  # any capture failure leaves the eager step, which is always correct
            logger.warning("decode graph capture for %d rows failed (%s); running that bucket eagerly", rows,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.modes[rows] = "eager"
            return eager
        logger.info("captured the decode step for %d rows as a graph", rows)
        self.modes[rows] = "graph"
        return replay
