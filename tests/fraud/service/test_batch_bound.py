"""The runner's bound on a batch by time as well as size (``max_batch_ms``): pure, no broker."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from npusuite.fraud.service.config import ServiceConfig
from npusuite.fraud.service.runner import FraudService


def service(**config) -> FraudService:
    return FraudService(ServiceConfig(bootstrap="127.0.0.1:1", **config), scorer=object())


def test_no_measurement_yet_takes_max_poll_records():
    assert service(max_poll_records=2000).batch_limit() == 2000


def test_the_limit_follows_the_measured_cost_per_record():
    s = service(max_poll_records=2000, max_batch_ms=40.0)
    s._observe_score_time(1000, 0.050)  # 50 us per record
    assert s.batch_limit() == 800       # 40 ms / 50 us
    for _ in range(50):                 # the scorer slows to 100 us per record (a busy neighbour)
        s._observe_score_time(500, 0.050)
    assert 398 <= s.batch_limit() <= 400


def test_small_batches_do_not_move_the_estimate():
    s = service(max_batch_ms=40.0)
    s._observe_score_time(1000, 0.050)
    s._observe_score_time(3, 0.030)  # a model pass dominates a tiny batch: 10 ms per record
    assert s.batch_limit() == 800


def test_never_below_overlap_min_records_nor_above_max_poll_records():
    s = service(max_poll_records=2000, max_batch_ms=40.0, overlap_min_records=200)
    s._observe_score_time(100, 1.0)  # 10 ms per record: 4 records in 40 ms
    assert s.batch_limit() == 200
    fast = service(max_poll_records=2000, max_batch_ms=40.0)
    fast._observe_score_time(1000, 0.001)  # 1 us per record: 40,000 in 40 ms
    assert fast.batch_limit() == 2000
    tiny = service(max_poll_records=50, max_batch_ms=40.0, overlap_min_records=200)
    tiny._observe_score_time(100, 1.0)
    assert tiny.batch_limit() == 50


def test_zero_turns_the_time_bound_off():
    s = service(max_poll_records=2000, max_batch_ms=0)
    s._observe_score_time(1000, 1.0)
    assert s.batch_limit() == 2000


def test_switch_interval_setting_is_validated_and_the_interpreter_default_untouched_by_construction():
    before = sys.getswitchinterval()
    service(gil_switch_interval_ms=1.0)
    assert sys.getswitchinterval() == before  # only run() sets it (and restores it on the way out)



@pytest.mark.parametrize("field", ["max_batch_ms", "gil_switch_interval_ms"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 1e300])
def test_hostile_values_are_refused_by_the_config(field, value):
    # inf would have overflowed int() in batch_limit (the scorer's loop) or stopped the interpreter switching
    # threads; `fraud run` turns this ValidationError into one line naming the option (command.py).
    with pytest.raises(ValidationError, match=field):
        ServiceConfig(bootstrap="127.0.0.1:1", **{field: value})
