"""Dynamic batcher: merging, bounded queue, deadlines, draining (pure engine, no sockets)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from npusuite.platform.engine import BatcherConfig, DeadlineExceededError, DynamicBatcher, EngineBusyError
from npusuite.platform.engine.observer import EngineObserver


class Recorder(EngineObserver):
    def __init__(self):
        self.sizes: list[int] = []

    def batch(self, model, size, queue_waits_s, compute_s):
        self.sizes.append(size)


def gated():
    """A predict function that blocks until the returned event is set."""
    gate = threading.Event()

    def blocked(inputs):
        gate.wait(30)
        return {"y": inputs["x"]}

    return gate, blocked


def slow_double(delay_s: float):
    def predict(inputs):
        time.sleep(delay_s)
        return {"y": inputs["x"] * 2}
    return predict


def test_concurrent_requests_are_merged_and_answered_in_order():
    rec = Recorder()
    b = DynamicBatcher(slow_double(0.05), BatcherConfig(max_batch_size=8, max_queue_delay_ms=20), observer=rec)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: b.infer({"x": np.full((1, 3), i, np.float32)}, timeout_s=30), range(32)))
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r["y"], np.full((1, 3), 2 * i))
    assert sum(rec.sizes) == 32 and max(rec.sizes) > 1 and max(rec.sizes) <= 8
    b.close()


def test_multi_row_requests_and_mismatched_shapes_are_not_mixed():
    b = DynamicBatcher(slow_double(0.02), BatcherConfig(max_batch_size=8, max_queue_delay_ms=20))
    futures = [b.submit({"x": np.ones((3, 2), np.float32)}), b.submit({"x": np.ones((2, 5), np.float32)}),
               b.submit({"x": np.ones((4, 2), np.float32)})]
    shapes = [f.result(30)["y"].shape for f in futures]
    assert shapes == [(3, 2), (2, 5), (4, 2)]
    with pytest.raises(ValueError, match="disagree on the batch size"):
        b.submit({"x": np.ones((2, 1)), "z": np.ones((3, 1))})
    b.close()


def test_full_queue_raises_busy_with_retry_after():
    gate, blocked = gated()
    b = DynamicBatcher(blocked, BatcherConfig(max_batch_size=1, max_queue_size=2, max_queue_delay_ms=0))
    first = b.submit({"x": np.ones((1, 1))})
    time.sleep(0.2)  # the worker is now stuck on `first`
    queued = [b.submit({"x": np.ones((1, 1))}) for _ in range(2)]
    with pytest.raises(EngineBusyError) as info:
        b.submit({"x": np.ones((1, 1))})
    assert info.value.retry_after_s >= 1
    gate.set()
    for f in [first, *queued]:
        assert f.result(30)["y"].shape == (1, 1)
    b.close()


def test_expired_requests_are_not_run():
    ran = []

    def predict(inputs):
        ran.append(len(inputs["x"]))
        time.sleep(0.3)
        return {"y": inputs["x"]}

    b = DynamicBatcher(predict, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    slow = b.submit({"x": np.ones((1, 1))})
    late = b.submit({"x": np.ones((1, 1))}, deadline_ms=50)
    with pytest.raises(DeadlineExceededError):
        late.result(30)
    slow.result(30)
    assert ran == [1]
    b.close()


def test_close_drains_everything_accepted():
    b = DynamicBatcher(slow_double(0.02), BatcherConfig(max_batch_size=2, max_queue_delay_ms=0))
    futures = [b.submit({"x": np.full((1, 1), i, np.float32)}) for i in range(10)]
    b.close(drain=True)
    assert [float(f.result(0)["y"][0, 0]) for f in futures] == [2.0 * i for i in range(10)]


@pytest.mark.parametrize("late", [True, False], ids=["past-deadline", "in-time"])
def test_cancelled_requests_do_not_kill_the_worker(late):
    gate, blocked = gated()
    b = DynamicBatcher(blocked, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    first = b.submit({"x": np.ones((1, 1))})
    time.sleep(0.2)  # the worker is now stuck on `first`
    cancelled = b.submit({"x": np.ones((1, 1))}, deadline_ms=1 if late else None)
    assert cancelled.cancel()
    time.sleep(0.05)
    gate.set()
    assert first.result(30)["y"].shape == (1, 1)
    # The worker skipped the cancelled request and is still serving.
    assert b.submit({"x": np.ones((1, 1))}).result(30)["y"].shape == (1, 1)
    b.close()


def test_close_without_drain_skips_cancelled_requests():
    gate, blocked = gated()
    b = DynamicBatcher(blocked, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    first = b.submit({"x": np.ones((1, 1))})
    time.sleep(0.2)
    cancelled, pending = (b.submit({"x": np.ones((1, 1))}) for _ in range(2))
    assert cancelled.cancel()
    closer = threading.Thread(target=b.close, kwargs={"drain": False, "timeout_s": 30})
    closer.start()
    time.sleep(0.1)
    gate.set()
    closer.join(30)
    assert first.result(30)["y"].shape == (1, 1)
    assert pending.exception(30) is not None and cancelled.cancelled()
