"""The reject signal to the line: a Modbus/TCP coil and/or an MQTT message, per line.

Rules:

* Each part is one frame, known by its ``seq``.  The line calls
  :meth:`RejectSignaller.open_part` when a frame is taken for inspection,
  :meth:`~RejectSignaller.verdict` when its inspection is done, and
  :meth:`~RejectSignaller.dropped` for frames the source dropped unseen.
* Its window starts at the frame's capture timestamp and lasts ``window_ms``.
  An NG verdict inside the window signals *reject* at once.  An OK verdict
  signals nothing on the coil (MQTT gets it with ``mqtt_all_verdicts``).
* Fail-safe (``fail_safe=True``): a part with no verdict when its window
  closes is rejected (reason ``no_verdict``), and so is a dropped frame
  (reason ``dropped``).  A verdict that arrives after the window closed is
  logged and counted as ``late_verdicts`` and never signals twice.  Without
  fail-safe, a late NG is still signalled (reason ``ng_late``).
* Modbus: the coil is written ``True`` and, with ``pulse_ms > 0``, written back
  to ``False`` after ``pulse_ms`` (``0`` = latch; the PLC clears it).  MQTT:
  one JSON message per signal (QoS 1) on ``mqtt_topic``.
* Signals are sent from one sender thread in order, so a slow PLC link never
  stalls inspection; a failed send is logged, counted (``send_errors``) and
  retried on the next signal with a fresh connection.  Successful sends are
  counted too (``sends_ok``), so :meth:`RejectStats.never_worked` can tell a
  line whose reject path failed for every part.
"""

from __future__ import annotations

import heapq
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from npusuite.inspection.records import Inspection, rfc3339
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RejectConfig:
    """Reject wiring for one line.  Neither ``modbus_host`` nor ``mqtt_host`` set = no outputs (counters only)."""

    line: str = "line-1"
    window_ms: float = 500.0
    fail_safe: bool = False
    modbus_host: str | None = None
    modbus_port: int = 502
    modbus_device_id: int = 1
    modbus_coil: int = 0
    pulse_ms: float = 100.0
    modbus_timeout_s: float = 1.0
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    mqtt_topic: str = "npusuite/inspection/reject"
    mqtt_all_verdicts: bool = False

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise UserError("reject window_ms must be > 0")
        if self.pulse_ms < 0:
            raise UserError("reject pulse_ms must be >= 0 (0 = latch)")
        if not 0 <= self.modbus_coil <= 65535:
            raise UserError("modbus coil address must be in 0..65535")


@dataclass(frozen=True)
class RejectEvent:
    """One message to the line."""

    line: str
    seq: int
    reject: bool
    reason: str  # ng | ng_late | no_verdict | dropped | ok
    captured_at: float
    sent_at: float
    score: float | None = None
    model: str | None = None

    def to_json(self) -> dict:
        return {"line": self.line, "seq": self.seq, "reject": self.reject, "reason": self.reason,
                "captured_at": rfc3339(self.captured_at), "sent_at": rfc3339(self.sent_at),
                "score": self.score, "model": self.model}


class RejectOutput(Protocol):
    def send(self, event: RejectEvent) -> None: ...
    def close(self) -> None: ...


class ModbusCoilOutput:
    """Writes the reject coil with pymodbus (sync TCP client)."""

    def __init__(self, cfg: RejectConfig) -> None:
        from pymodbus.client import ModbusTcpClient

        self.cfg = cfg
        self._client = ModbusTcpClient(cfg.modbus_host, port=cfg.modbus_port, timeout=cfg.modbus_timeout_s)
        self._clear_at: list[float] = []
        self._lock = threading.Lock()

    def _write(self, value: bool) -> None:
        with self._lock:
            if not self._client.connected and not self._client.connect():
                raise ConnectionError(f"cannot reach PLC at {self.cfg.modbus_host}:{self.cfg.modbus_port}")
            result = self._client.write_coil(self.cfg.modbus_coil, value, device_id=self.cfg.modbus_device_id)
            if result.isError():
                raise ConnectionError(f"PLC refused coil {self.cfg.modbus_coil} write: {result}")

    def send(self, event: RejectEvent) -> None:
        if not event.reject:
            return
        self._write(True)
        if self.cfg.pulse_ms > 0:
            timer = threading.Timer(self.cfg.pulse_ms / 1000.0, self._clear)
            timer.daemon = True
            timer.start()

    def _clear(self) -> None:
        try:
            self._write(False)
        except Exception as exc:
            logger.warning("could not clear reject coil %d: %s", self.cfg.modbus_coil, exc)

    def close(self) -> None:
        with self._lock:
            self._client.close()


class MqttOutput:
    """Publishes each signal as JSON with paho-mqtt (QoS 1)."""

    def __init__(self, cfg: RejectConfig) -> None:
        import paho.mqtt.client as mqtt

        self.cfg = cfg
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"npusuite-{cfg.line}")
        self._client.connect_async(cfg.mqtt_host, cfg.mqtt_port)
        self._client.loop_start()

    def send(self, event: RejectEvent) -> None:
        if not event.reject and not self.cfg.mqtt_all_verdicts:
            return
        import paho.mqtt.client as mqtt

        info = self._client.publish(self.cfg.mqtt_topic, json.dumps(event.to_json()), qos=1)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:  # QoS 1: paho keeps it and sends it once (re)connected
            logger.warning("MQTT broker %s:%d not connected; reject for part %d queued", self.cfg.mqtt_host,
                           self.cfg.mqtt_port, event.seq)
            return
        if info.rc != 0:
            raise ConnectionError(f"MQTT publish to {self.cfg.mqtt_host}:{self.cfg.mqtt_port} failed (rc {info.rc})")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass
class RejectStats:
    parts: int = 0
    rejects_ng: int = 0
    rejects_failsafe: int = 0
    late_verdicts: int = 0
    send_errors: int = 0
    sends_ok: int = 0
    sent: list[RejectEvent] = field(default_factory=list, repr=False)

    def never_worked(self) -> bool:
        """Signals were due and not one of them reached an output."""
        return self.send_errors > 0 and self.sends_ok == 0


def default_outputs(cfg: RejectConfig) -> list[RejectOutput]:
    outputs: list[RejectOutput] = []
    if cfg.modbus_host:
        outputs.append(ModbusCoilOutput(cfg))
    if cfg.mqtt_host:
        outputs.append(MqttOutput(cfg))
    return outputs


class RejectSignaller:
    """Window/fail-safe bookkeeping plus the sender thread.  Thread-safe."""

    def __init__(self, cfg: RejectConfig, outputs: list[RejectOutput] | None = None, clock=time.time,
                 keep_events: int = 1000) -> None:
        self.cfg = cfg
        self.outputs = default_outputs(cfg) if outputs is None else outputs
        self._clock = clock
        self._keep = keep_events
        self._lock = threading.Condition()
        self._open: dict[int, float] = {}  # seq -> captured_at
        self._deadlines: list[tuple[float, int]] = []
        self._stats = RejectStats()
        #: Called (on the sender thread) for each reject signal an output failed to send: the line's metrics.
        self.on_send_error: Callable[[], None] | None = None
        self._outbox: queue.Queue[RejectEvent | None] = queue.Queue()
        self._closed = False
        self._sender = threading.Thread(target=self._send_loop, name=f"reject:{cfg.line}", daemon=True)
        self._sender.start()
        self._watchdog = threading.Thread(target=self._watch_loop, name=f"reject-watch:{cfg.line}", daemon=True)
        self._watchdog.start()

    def stats(self) -> RejectStats:
        with self._lock:
            return replace(self._stats, sent=list(self._stats.sent))

    def open_part(self, seq: int, captured_at: float) -> None:
        with self._lock:
            self._stats.parts += 1
            self._open[seq] = captured_at
            heapq.heappush(self._deadlines, (captured_at + self.cfg.window_ms / 1000.0, seq))
            self._lock.notify_all()

    def verdict(self, inspection: Inspection) -> None:
        seq = inspection.frame.seq
        with self._lock:
            captured_at = self._open.pop(seq, None)
            in_window = captured_at is not None and self._clock() <= captured_at + self.cfg.window_ms / 1000.0
            if captured_at is None or not in_window:
                self._stats.late_verdicts += 1
                if captured_at is None and self.cfg.fail_safe:
                    logger.warning("part %d: verdict %s arrived after its window; already rejected by fail-safe",
                                   seq, inspection.verdict)
                    return
                if not inspection.defective:
                    return
                reason = "ng_late"
            else:
                reason = "ng" if inspection.defective else "ok"
            if inspection.defective:
                self._stats.rejects_ng += 1
        self._emit(seq, inspection.defective, reason, inspection.frame.timestamp, inspection.score, inspection.model)

    def dropped(self, seqs: list[int], captured_at: float) -> None:
        """Frames the source dropped: with fail-safe each is rejected (reason ``dropped``)."""
        if not self.cfg.fail_safe or not seqs:
            return
        with self._lock:
            self._stats.parts += len(seqs)
            self._stats.rejects_failsafe += len(seqs)
        for seq in seqs:
            self._emit(seq, True, "dropped", captured_at, None, None)

    def _emit(self, seq: int, reject: bool, reason: str, captured_at: float, score: float | None,
              model: str | None) -> None:
        event = RejectEvent(self.cfg.line, seq, reject, reason, captured_at, self._clock(), score, model)
        if reject:
            logger.info("line %s part %d: REJECT (%s, score %s)", self.cfg.line, seq, reason, score)
        self._outbox.put(event)

    def _watch_loop(self) -> None:
        """Fail-safe: reject every part still open when its window closes."""
        with self._lock:
            while not self._closed:
                now = self._clock()
                expired: list[tuple[int, float]] = []
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, seq = heapq.heappop(self._deadlines)
                    if self.cfg.fail_safe and seq in self._open:
                        expired.append((seq, self._open.pop(seq)))
                self._stats.rejects_failsafe += len(expired)
                if expired:
                    self._lock.release()  # _emit logs and queues; never under our lock
                    try:
                        for seq, captured_at in expired:
                            self._emit(seq, True, "no_verdict", captured_at, None, None)
                    finally:
                        self._lock.acquire()
                    continue
                timeout = (self._deadlines[0][0] - self._clock()) if self._deadlines else 0.5
                self._lock.wait(max(0.001, min(timeout, 0.5)))

    def _send_loop(self) -> None:
        while True:
            event = self._outbox.get()
            if event is None:
                return
            for out in self.outputs:
                try:
                    out.send(event)
                    with self._lock:
                        self._stats.sends_ok += 1
                except Exception as exc:
                    with self._lock:
                        self._stats.send_errors += 1
                    if self.on_send_error is not None:
                        self.on_send_error()
                    logger.error("line %s: reject signal for part %d via %s failed: %s", self.cfg.line, event.seq,
                                 type(out).__name__, exc)
            with self._lock:
                if event.reject or self.cfg.mqtt_all_verdicts:
                    self._stats.sent.append(event)
                    del self._stats.sent[: -self._keep]

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush queued signals, stop the threads and close the outputs."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._outbox.put(None)
        self._sender.join(timeout_s)
        self._watchdog.join(timeout_s)
        for out in self.outputs:
            try:
                out.close()
            except Exception as exc:
                logger.warning("closing %s: %s", type(out).__name__, exc)
