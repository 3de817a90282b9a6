"""GcPolicy: survivors of a batch leave the collector's scans; cyclic garbage is still freed when idle."""

from __future__ import annotations

import gc
import weakref

import pytest

from npusuite.platform.gc_policy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def _unfrozen():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_install_raises_only_the_young_threshold():
    _, older, oldest = gc.get_threshold()
    GcPolicy(young_threshold=12_345).install()
    assert gc.get_threshold() == (12_345, older, oldest)


def test_after_batch_freezes_the_survivors():
    gc.unfreeze()
    policy = GcPolicy()
    kept = [Node() for _ in range(100)]
    policy.after_batch()
    assert gc.get_freeze_count() >= len(kept)


def test_idle_full_pass_frees_cycles_that_were_frozen():
    now = [0.0]
    policy = GcPolicy(idle_full_after_s=60.0, clock=lambda: now[0])
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    policy.after_batch()  # the cycle is frozen while still referenced
    del a, b
    gc.collect()
    assert ref() is not None, "a frozen cycle is not scanned by ordinary collections"
    policy.idle()  # not due yet
    assert ref() is not None
    now[0] = 61.0
    policy.idle()
    assert ref() is None


def test_a_full_pass_runs_under_constant_load_too():
    now = [0.0]
    policy = GcPolicy(full_every_s=600.0, clock=lambda: now[0])
    a = Node()
    a.other = a
    ref = weakref.ref(a)
    policy.after_batch()
    del a
    now[0] = 601.0
    policy.after_batch()
    assert ref() is None
