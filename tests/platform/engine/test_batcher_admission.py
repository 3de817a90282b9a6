"""Batcher admission (issue 12.5): refuse at once what cannot meet its deadline, never compute what was
cancelled, count what ran."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from npusuite.platform.engine import BatcherConfig, DynamicBatcher, EngineBusyError


def _gated():
    gate, ran = threading.Event(), []

    def predict(inputs):
        ran.append(len(inputs["x"]))
        gate.wait(30)
        return {"y": inputs["x"]}

    return gate, ran, predict


def test_a_request_that_cannot_finish_before_its_deadline_is_refused_at_once():
    gate, ran, predict = _gated()
    b = DynamicBatcher(predict, BatcherConfig(max_batch_size=2, max_queue_delay_ms=0), batch_seconds_hint=0.5)
    running = b.submit({"x": np.ones((1, 1))})
    queued = [b.submit({"x": np.ones((1, 1))}, deadline_ms=5000) for _ in range(4)]
    with pytest.raises(EngineBusyError, match="deadline") as info:
        b.submit({"x": np.ones((1, 1))}, deadline_ms=600)  # ~2 batches ahead at 0.5 s each
    assert info.value.retry_after_s >= 1
    gate.set()
    for f in [running, *queued]:
        f.result(30)
    b.close()
    assert sum(ran) == 5 and b.rows_computed == 5


def test_cancelled_requests_are_never_computed():
    gate, ran, predict = _gated()
    b = DynamicBatcher(predict, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    first = b.submit({"x": np.ones((1, 1))})
    deadline = time.monotonic() + 10
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    gone = [b.submit({"x": np.ones((1, 1))}) for _ in range(5)]
    assert all(f.cancel() for f in gone)
    kept = b.submit({"x": np.ones((1, 1))})
    gate.set()
    first.result(30)
    kept.result(30)
    b.close()
    assert b.rows_computed == 2 and ran == [1, 1]
