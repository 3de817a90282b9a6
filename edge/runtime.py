"""Wires one edge box together from a typed config: what ``npusuite edge agent`` runs.

Start-up order (each step's failure is a one-line UserError):

1. open the outbox (SQLite WAL) and the A/B slots; a slot left on trial by a
   crash is rolled back *before* anything loads;
2. choose the model: ``model_dir`` if given (fixed, no updates), else the
   committed slot's ``model/``; with neither the line waits (taking no frames)
   until a first update commits;
3. start the syncer (review ingest or Kafka), the fleet client (enrol,
   heartbeat, assigned updates) and the status endpoint;
4. run the line until the source ends or SIGTERM/SIGINT; then stop taking
   frames, give the syncer ``drain_timeout_s`` to empty the outbox, stop.

Under systemd (``deploy/systemd/npusuite-edge-agent.service``, ``Type=notify``)
the runtime sends ``READY=1`` once step 3 is done, pings ``WATCHDOG=1`` from a
thread while the line's thread is alive, and ``STOPPING=1`` when it stops.
The watchdog proves the process is scheduled and the line's thread exists, not
that frames flow: a camera outage must not restart the box (frame flow is
reported by ``/status`` and the metrics instead).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npusuite.edge.agent import AgentConfig, EdgeAgent
from npusuite.edge.fleet_client import FleetClient
from npusuite.edge.health import HealthCheck, HealthConfig, InspectorFactory, SampleSource
from npusuite.edge.outbox import FsyncPolicy, Outbox, OutboxConfig
from npusuite.edge.pipeline import inspectors_for
from npusuite.edge.slots import SlotManager
from npusuite.edge.status_server import StatusServer, create_status_app
from npusuite.edge.sync import HttpIngestSink, KafkaSink, Sink, Syncer
from npusuite.edge.updates import UpdateManager, UpdateSource, bundle_label
from npusuite.platform.contracts.inspection import MAX_LINE_CHARS
from npusuite.platform.errors import UserError
from npusuite.platform.sd_notify import SdNotify

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeConfig:
    box_dir: Path
    device_id: str
    source: str
    line: str = "line-1"
    product: str | None = None
    model_dir: Path | None = None
    review_url: str | None = None
    ingest_token: str | None = None
    kafka_bootstrap: str | None = None
    kafka_topic: str = "inspection-results"
    #: also send OK results to the review app (each becomes a case there); Kafka always gets all
    review_send_ok: bool = False
    fleet_url: str | None = None
    enroll_token: str | None = None
    tuf_url: str | None = None  # default: FLEET_URL/tuf
    trusted_root: Path | None = None
    heartbeat_interval_s: float = 5.0
    status_host: str = "127.0.0.1"
    status_port: int | None = None
    status_token: str | None = None
    outbox_fsync: FsyncPolicy = "full"
    outbox_max_bytes: int = 256 * 1024 * 1024
    frame_interval_ms: float = 0.0
    max_p95_latency_ms: float = 2000.0
    drain_timeout_s: float = 30.0
    exit_when_source_ends: bool = True
    #: reject signalling (Modbus coil / MQTT) through the inspection line's RejectSignaller; None = off
    reject: Any = None
    #: an image folder or video file: result ids are deterministic and a restart skips recorded frames
    replayable_source: bool = False


class AgentRuntime:
    def __init__(self, config: RuntimeConfig, factory: InspectorFactory, health_frames: list[Any] | SampleSource,
                 health_expected_ng: list[bool] | None = None, notifier: SdNotify | None = None) -> None:
        """``health_frames``: fixed sample frames for update health checks, or a SampleSource asked per bundle
        (the agent's default: :func:`~npusuite.edge.pipeline.bundle_samples`, its calibration images)."""
        self.config = c = config
        self.notifier = notifier or SdNotify.from_settings()
        # Every result carries line and product (InspectionResult's limits): refuse them now, not per frame.
        if not 1 <= len(c.line) <= MAX_LINE_CHARS or (c.product is not None and len(c.product) > MAX_LINE_CHARS):
            raise UserError(f"--line and --product must be 1-{MAX_LINE_CHARS} characters (docs/contracts.md)")
        self.stop_event = threading.Event()
        self.outbox = Outbox(OutboxConfig(c.box_dir / "outbox.db", max_bytes=c.outbox_max_bytes, fsync=c.outbox_fsync))
        self.slots = SlotManager(c.box_dir)
        if self.slots.recover():
            logger.warning("previous run died during an update's health check: rolled back")
        #: one swap mechanism for the first model and every update (the platform engine for --pipeline inspection)
        self.inspectors = inspectors_for(factory)
        self.factory = factory
        self.syncer = Syncer(self.outbox, self._sink()) if (c.review_url or c.kafka_bootstrap) else None
        if self.syncer is None:
            logger.warning("no upstream configured (--review-url or --kafka-bootstrap): results stay in the outbox")
        self.updates: UpdateManager | None = None
        if c.fleet_url or c.tuf_url:
            if c.trusted_root is None and not (c.box_dir / "tuf" / "metadata" / "root.json").exists():
                raise UserError("updates need a trusted TUF root: pass --trusted-root (the release's 1.root.json)")
            health = HealthCheck(factory, health_frames, HealthConfig(max_p95_latency_ms=c.max_p95_latency_ms),
                                 expected_ng=health_expected_ng)
            source = UpdateSource.from_base(c.tuf_url or f"{c.fleet_url.rstrip('/')}/tuf")
            self.updates = UpdateManager(self.slots, source, health, inspectors=self.inspectors)
            if c.trusted_root is not None:
                self.updates.trust_root(c.trusted_root)
        self.signaller = None
        hooks: dict[str, Any] = {}
        if c.reject is not None:
            from npusuite.inspection.reject import RejectSignaller

            self.signaller = sig = RejectSignaller(c.reject)
            hooks = {"on_frame": lambda f: sig.open_part(f.seq, f.timestamp), "actions": [sig.verdict],
                     "on_dropped": sig.dropped}
        self.agent = EdgeAgent(AgentConfig(c.device_id, c.line, c.product, replayable_source=c.replayable_source,
                                           frame_interval_ms=c.frame_interval_ms), self.outbox, self.inspectors,
                               on_stored=self.syncer.wake if self.syncer else None, **hooks)
        self.fleet = (FleetClient(c.fleet_url, c.device_id, c.box_dir, self.updates, self._health,
                                  enrollment_token=c.enroll_token, interval_s=c.heartbeat_interval_s)
                      if c.fleet_url else None)
        if c.status_port:
            from npusuite.platform.observability.infrastructure import register_infrastructure

            register_infrastructure(self.outbox.registry, {"box": c.box_dir}, getattr(c, "device", None))
        self.status_server = (StatusServer(create_status_app(self.status, self.outbox.registry, c.status_token,
                                                             lambda: {"model": self.inspectors.ref is not None}),
                                           c.status_host, c.status_port) if c.status_port else None)

    def _sink(self) -> Sink:
        c = self.config
        if c.review_url:
            if not c.ingest_token:
                raise UserError("--review-url needs an ingest token (--ingest-token or NPUSUITE_REVIEW_INGEST_TOKEN)")
            return HttpIngestSink(c.review_url, c.ingest_token, send_ok=c.review_send_ok)
        return KafkaSink(c.kafka_bootstrap, c.kafka_topic)

    def load_initial_model(self) -> None:
        c = self.config
        model_dir, label = c.model_dir, None
        if model_dir is None and self.slots.committed() is not None:
            bundle = self.slots.bundle_dir(self.slots.state.committed)
            model_dir, label = bundle / "model", bundle_label(bundle)
        if model_dir is None:
            logger.warning("no model yet: frames are not inspected until the first update commits")
            return
        report = self.inspectors.install(model_dir, label)
        if not report.ok:
            raise UserError(f"cannot load model from {model_dir}: {report.reason}")

    def _health(self) -> dict[str, Any]:
        s = self.outbox.stats()
        return {"frames": self.agent.counters.frames, "model": self.agent.counters.last_model,
                "outbox_pending": s.pending, "outbox_dropped_ok": s.dropped_ok,
                "link_up": self.syncer.status.link_up if self.syncer else None}

    def status(self) -> dict[str, Any]:
        out = self.agent.status()
        out["slots"] = self.slots.state.to_json()
        out["update"] = self.updates.status.to_json() if self.updates else None
        out["sync"] = vars(self.syncer.status) if self.syncer else None
        out["reject"] = ({k: v for k, v in vars(self.signaller.stats()).items() if k != "sent"}
                         if self.signaller else None)
        out["fleet"] = ({"url": self.fleet.url, "last_error": self.fleet.last_error,
                         "outcomes": self.fleet.outcomes} if self.fleet else None)
        return out

    def run(self, frames: Any) -> dict[str, Any]:
        """Run the line on ``frames`` (an iterable of Frame); returns the final status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.load_initial_model()
        if self.syncer:
            self.syncer.start()
        if self.fleet:
            self.fleet.token()  # enrol now: a bad enrolment token is a start-up error
            self.fleet.start()
        if self.status_server:
            self.status_server.start()
        self._start_watchdog(threading.current_thread())
        self.notifier.ready(f"inspecting line {self.config.line}")
        try:
            self.agent.run(frames, self.stop_event)
            if self.config.exit_when_source_ends and not self.stop_event.is_set():
                logger.info("source finished after %d frames", self.agent.counters.frames)
            else:
                self.stop_event.wait()
            self.notifier.stopping()
            self._drain()
        finally:
            if self.signaller is not None:
                self.signaller.close()
            if self.fleet:
                self.fleet.stop()
            if self.syncer:
                self.syncer.stop()
            if self.status_server:
                self.status_server.stop()
        final = self.status()
        self.inspectors.close()
        self.outbox.close()
        return final

    def _start_watchdog(self, line_thread: threading.Thread) -> None:
        interval = self.notifier.watchdog_interval_s()
        if interval is None:
            return

        def ping() -> None:
            while line_thread.is_alive() and not self.stop_event.wait(interval):
                self.notifier.watchdog()

        threading.Thread(target=ping, name="sd-watchdog", daemon=True).start()

    def _drain(self) -> None:
        if not self.syncer:
            return
        deadline = time.monotonic() + self.config.drain_timeout_s
        while self.outbox.stats().pending and time.monotonic() < deadline:
            self.syncer.wake()
            time.sleep(0.1)
        left = self.outbox.stats().pending
        if left:
            logger.warning("%d results still in the outbox; they are sent on the next start", left)
