"""Dynamic batcher for tensor models: a bounded queue, greedy merging, deadlines.

Rules:
- ``submit`` never blocks: a full queue (``max_queue_size`` requests) raises
  :class:`EngineBusyError` with a retry-after estimate, and so does a request
  that could not finish before its deadline (the rows queued ahead of it,
  in batches of ``max_batch_size``, times the last batch's compute time, plus
  its own batch): refused at once with 503, not queued to die with 504.
- A request cancelled by its caller while queued (``future.cancel()``, e.g.
  when the HTTP client disconnected) is skipped, never computed.
  ``rows_computed`` counts the rows actually run.
- One worker thread forms batches.  It waits for the first request, then for
  at most ``max_queue_delay_ms`` counted from that request's arrival, or until
  ``max_batch_size`` rows are waiting, then takes requests greedily from the
  front while they fit (a single request larger than the batch runs alone).
  Only requests with the same tensor names and trailing shapes are merged.
- A request whose deadline passed before its batch ran fails with
  :class:`DeadlineExceededError` and is not run.
- ``close(drain=True)`` stops accepting, runs everything already queued, then
  stops the worker; nothing accepted is dropped.

Default ``max_queue_delay_ms`` = 0 (measured by ``bench/platform_batch_delay.py``,
see docs/platform.md): while the worker runs a batch, new requests queue
behind it and are merged into the next batch anyway ("natural" batching), so
a timer only adds latency: in the measurement every delay > 0 lost both
throughput and p50/p99 latency at 1, 8 and 32 clients, and the reference
deployment's 50 ms cost ~50 ms on every request at low load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from npusuite.platform.engine.errors import DeadlineExceededError, EngineBusyError, EngineClosedError
from npusuite.platform.engine.observer import EngineObserver, NullObserver

logger = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatcherConfig:
    max_batch_size: int = 32
    max_queue_delay_ms: float = 0.0
    max_queue_size: int = 512
    #: deadline applied when a request brings none; None = wait forever.
    default_deadline_ms: float | None = 30_000.0

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue_size < 1 or self.max_queue_delay_ms < 0:
            raise ValueError(f"invalid batcher config {self}")


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    enqueued_s: float
    deadline_s: float | None
    future: Future = field(default_factory=Future)

    def signature(self) -> tuple:
        return tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in self.inputs.items()))


def _rows(inputs: Tensors) -> int:
    sizes = {int(v.shape[0]) if v.ndim else 1 for v in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"input tensors disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


class DynamicBatcher:
    """Merges concurrent requests to ``predict`` into batches; one per model version."""

    def __init__(self, predict: Callable[[Tensors], Tensors], config: BatcherConfig | None = None,
                 name: str = "model", observer: EngineObserver | None = None, batch_seconds_hint: float = 0.0):
        self.predict = predict
        self.config = config or BatcherConfig()
        self.name = name
        self.observer = observer or NullObserver()
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        #: compute time of the last batch (seeded with the warm-up's), for admission and Retry-After
        self._last_batch_s = batch_seconds_hint
        self._queued_rows = 0
        self.rows_computed = 0
        self._worker = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._worker.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(self, inputs: Tensors, deadline_ms: float | None = None) -> Future:
        """Queue one request (first axis = rows).  Raises EngineBusyError, EngineClosedError, ValueError."""
        rows = _rows(inputs)
        now = time.monotonic()
        deadline_ms = self.config.default_deadline_ms if deadline_ms is None else deadline_ms
        item = _Pending(inputs, rows, now, None if deadline_ms is None else now + deadline_ms / 1000)
        with self._cond:
            if self._closed:
                raise EngineClosedError(f"{self.name} is closed")
            batches_ahead = self._queued_rows // self.config.max_batch_size + 1  # +1: the batch running now
            if len(self._queue) >= self.config.max_queue_size:
                raise EngineBusyError(f"{self.name}: queue full ({len(self._queue)} waiting)",
                                      retry_after_s=max(1.0, batches_ahead * self._last_batch_s))
            if item.deadline_s is not None and self._last_batch_s > 0:
                finish_s = (batches_ahead + 1) * self._last_batch_s
                if now + finish_s > item.deadline_s:
                    raise EngineBusyError(
                        f"{self.name}: queue full for this deadline ({self._queued_rows} rows ahead, about "
                        f"{finish_s * 1000:.0f} ms to answer, deadline {deadline_ms:.0f} ms)",
                        retry_after_s=max(1.0, batches_ahead * self._last_batch_s))
            self._queue.append(item)
            self._queued_rows += rows
            self.observer.queue_depth(self.name, len(self._queue))
            self._cond.notify()
        return item.future

    def infer(self, inputs: Tensors, timeout_s: float | None = None, deadline_ms: float | None = None) -> Tensors:
        return self.submit(inputs, deadline_ms).result(timeout_s)

    def close(self, drain: bool = True, timeout_s: float | None = None) -> None:
        with self._cond:
            self._closed = True
            if not drain:
                while self._queue:
                    future = self._queue.popleft().future
                    self._queued_rows = 0
                    if future.set_running_or_notify_cancel():  # False: its caller cancelled it
                        future.set_exception(EngineClosedError(f"{self.name} closed"))
            self._cond.notify_all()
        self._worker.join(timeout_s)

    # ---- worker --------------------------------------------------------------------------
    def _take_batch(self) -> list[_Pending] | None:
        delay_s = self.config.max_queue_delay_ms / 1000
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue[0]
            while not self._closed:
                waiting_rows = sum(p.rows for p in self._queue)
                remaining = first.enqueued_s + delay_s - time.monotonic()
                if waiting_rows >= self.config.max_batch_size or remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._queue.popleft()]
            signature, rows = batch[0].signature(), batch[0].rows
            skipped: list[_Pending] = []
            while self._queue and rows < self.config.max_batch_size:
                item = self._queue[0]
                if rows + item.rows > self.config.max_batch_size:
                    break
                self._queue.popleft()
                if item.signature() == signature:
                    batch.append(item)
                    rows += item.rows
                else:
                    skipped.append(item)
            self._queue.extendleft(reversed(skipped))
            self._queued_rows -= rows
            self.observer.queue_depth(self.name, len(self._queue))
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            now = time.monotonic()
            live = []
            for item in batch:
                if not item.future.set_running_or_notify_cancel():
                    continue  # cancelled by its caller while queued: nothing to answer
                if item.deadline_s is not None and now > item.deadline_s:
                    item.future.set_exception(DeadlineExceededError(
                        f"{self.name}: waited {1000 * (now - item.enqueued_s):.0f} ms, past its deadline"))
                else:
                    live.append(item)
            if live:
                self._execute(live, now)

    def _execute(self, batch: list[_Pending], start_s: float) -> None:
        try:
            names = list(batch[0].inputs)
            merged = {n: np.concatenate([p.inputs[n] for p in batch]) if len(batch) > 1 else batch[0].inputs[n]
                      for n in names}
            self.rows_computed += sum(p.rows for p in batch)
            outputs = self.predict(merged)
            compute_s = time.monotonic() - start_s
            offset = 0
            for item in batch:
                item.future.set_result({k: v[offset:offset + item.rows] for k, v in outputs.items()})
                offset += item.rows
        except Exception as exc:
            compute_s = time.monotonic() - start_s
            logger.warning("%s: batch of %d failed: %s", self.name, len(batch), exc)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
        self._last_batch_s = compute_s
        self.observer.batch(self.name, sum(p.rows for p in batch), [start_s - p.enqueued_s for p in batch],
                            compute_s)
