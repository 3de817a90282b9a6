"""Reject signals against a real pymodbus Modbus/TCP server process (the PLC simulator)."""

import time

import numpy as np

from npusuite.inspection.records import Frame, Inspection
from npusuite.inspection.reject import RejectConfig, RejectSignaller


def _inspection(seq: int, captured_at: float, score: float, threshold: float = 0.5) -> Inspection:
    frame = Frame(np.zeros((8, 8, 3), np.uint8), captured_at, "test", seq)
    return Inspection(frame, score, threshold, np.zeros((8, 8), np.float32), [], 1.0, "washer@1")


def _wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_reject_coil_is_set_for_ng_parts_within_the_window(plc):
    window_ms = 2000.0  # generous: the machine is shared and loaded
    cfg = RejectConfig(line="L1", window_ms=window_ms, modbus_host="127.0.0.1", modbus_port=plc.port, modbus_coil=5,
                       pulse_ms=50.0)
    signaller = RejectSignaller(cfg)
    scores = [0.1, 0.9, 0.2, 0.3, 0.8, 0.95, 0.05, 0.4]
    captured = {}
    for seq, score in enumerate(scores):
        t = time.time()
        captured[seq] = t
        signaller.open_part(seq, t)
        signaller.verdict(_inspection(seq, t, score))
        time.sleep(0.3)  # parts further apart than the pulse
    ng = [seq for seq, s in enumerate(scores) if s >= 0.5]
    _wait_for(lambda: sum(1 for w in plc.writes() if not w["value"]) >= len(ng))
    signaller.close()
    writes = plc.writes()
    sets = [w for w in writes if w["value"]]
    assert all(w["address"] == 5 for w in writes)
    assert len(sets) == len(ng) == 3
    for seq, w in zip(ng, sets, strict=True):  # each NG part's coil write landed inside its window
        assert captured[seq] <= w["t"] <= captured[seq] + window_ms / 1000.0, (seq, w)
    for w_set, w_clear in zip(sets, [w for w in writes if not w["value"]], strict=True):
        assert w_clear["t"] >= w_set["t"]  # pulsed: set, then cleared
    stats = signaller.stats()
    assert stats.rejects_ng == 3 and stats.send_errors == 0 and stats.rejects_failsafe == 0


def test_fail_safe_rejects_a_part_without_a_verdict_when_its_window_closes(plc):
    cfg = RejectConfig(line="L2", window_ms=300.0, fail_safe=True, modbus_host="127.0.0.1", modbus_port=plc.port,
                       modbus_coil=7, pulse_ms=0.0)
    signaller = RejectSignaller(cfg)
    t0 = time.time()
    signaller.open_part(0, t0)  # never gets a verdict
    signaller.open_part(1, t0)
    signaller.verdict(_inspection(1, t0, 0.1))  # OK, in time: nothing
    _wait_for(lambda: len(plc.writes()) >= 1)
    time.sleep(0.5)
    late = _inspection(0, t0, 0.1)
    signaller.verdict(late)  # arrives after the window: must not signal again
    signaller.dropped([2, 3], time.time())  # frames the source dropped unseen
    _wait_for(lambda: len(plc.writes()) >= 3)
    signaller.close()
    writes = plc.writes()
    assert [w["value"] for w in writes] == [True, True, True] and all(w["address"] == 7 for w in writes)
    assert writes[0]["t"] >= t0 + 0.3  # not before the window closed
    stats = signaller.stats()
    assert stats.rejects_failsafe == 3 and stats.late_verdicts == 1 and stats.rejects_ng == 0
    assert [e.reason for e in stats.sent] == ["no_verdict", "dropped", "dropped"]


def test_an_unreachable_plc_is_counted_not_fatal():
    cfg = RejectConfig(modbus_host="127.0.0.1", modbus_port=1, modbus_timeout_s=0.5, window_ms=5000)
    signaller = RejectSignaller(cfg)
    t = time.time()
    signaller.open_part(0, t)
    signaller.verdict(_inspection(0, t, 0.9))
    _wait_for(lambda: signaller.stats().send_errors == 1)
    signaller.close()
