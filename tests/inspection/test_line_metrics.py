"""The line's metrics in process, and ``inspection run --metrics-port`` serving /metrics /healthz /readyz."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from npusuite.inspection.line import EngineInspectors, InspectionLine, LineConfig
from npusuite.inspection.metrics import LineMetrics
from npusuite.inspection.reject import RejectConfig, RejectSignaller
from npusuite.inspection.source import FrameSource, SourceConfig
from npusuite.inspection.video import write_line_video
from npusuite.platform.observability import names as N


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_line_counts_every_verdict_and_late_ones(tiny_model: Path, small_data: Path):
    registry = CollectorRegistry()
    metrics = LineMetrics(registry, "l1", reject_window_s=1e-9)  # every verdict is late
    inspectors = EngineInspectors.open(tiny_model)
    source = FrameSource(SourceConfig(str(small_data / "washer"), queue_size=64, realtime=False))
    line = InspectionLine(source, inspectors, LineConfig(line="l1", max_batch=4), metrics=metrics)
    with source:
        stats = line.run()
    inspectors.close()
    get = registry.get_sample_value
    lbl = {"line": "l1"}
    assert stats.frames > 0 and get(N.INSPECTION_FRAMES, lbl) == stats.frames
    assert get(N.INSPECTION_DECISIONS, {**lbl, "decision": "ng"}) == stats.ng
    assert get(N.INSPECTION_DECISIONS, {**lbl, "decision": "ok"}) == stats.frames - stats.ng
    assert get(N.INSPECTION_LATE_DECISIONS, lbl) == stats.frames
    assert get(N.INSPECTION_DECISION_SECONDS + "_count", lbl) == stats.frames
    assert get(N.INSPECTION_SCORE + "_count", lbl) == stats.frames
    assert get(N.INSPECTION_FORWARD_SECONDS + "_count", lbl) >= stats.frames / 4
    assert get(N.INSPECTION_ERRORS, {**lbl, "stage": "inspect"}) == 0


class _UnpluggedPlc:
    """A reject output whose every send fails, as a PLC that is unreachable."""

    def send(self, event) -> None:
        raise ConnectionError("PLC unreachable")

    def close(self) -> None:
        pass


def test_failed_reject_signals_count_as_plc_errors(tiny_model: Path, small_data: Path):
    registry = CollectorRegistry()
    metrics = LineMetrics(registry, "l1", reject_window_s=10.0)
    inspectors = EngineInspectors.open(tiny_model)
    signaller = RejectSignaller(RejectConfig(line="l1", window_ms=10_000, mqtt_all_verdicts=True),
                                outputs=[_UnpluggedPlc()])
    source = FrameSource(SourceConfig(str(small_data / "washer"), queue_size=64, realtime=False))
    line = InspectionLine(source, inspectors, LineConfig(line="l1", max_batch=4), reject=signaller, metrics=metrics)
    with source:
        stats = line.run()
    signaller.close()
    inspectors.close()
    sent = signaller.stats()
    assert stats.frames > 0 and sent.send_errors > 0
    get = registry.get_sample_value
    assert get(N.INSPECTION_ERRORS, {"line": "l1", "stage": "plc"}) == sent.send_errors
    assert get(N.INSPECTION_ERRORS, {"line": "l1", "stage": "inspect"}) == 0


def test_inspection_run_serves_metrics_health_and_readiness(tiny_model: Path, tmp_path: Path):
    clip = tmp_path / "line.avi"
    write_line_video(clip, "washer", frames=40, fps=10.0, defect_rate=0.3, seed=3)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "npusuite.platform", "inspection", "run", "--source", str(clip), "--model",
         str(tiny_model), "--loop", "--allow-no-plc", "--results", str(tmp_path / "r.jsonl"),
         "--metrics-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(url + "/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["checks"] == {"model": True, "source": True}
        assert httpx.get(url + "/healthz", timeout=2).json() == {"status": "ok"}
        for _ in range(100):
            text = httpx.get(url + "/metrics", timeout=2).text
            if 'npusuite_inspection_frames_total{line="line-1"}' in text and \
                    'npusuite_inspection_frames_total{line="line-1"} 0.0' not in text:
                break
            time.sleep(0.2)
        assert 'npusuite_inspection_frames_total{line="line-1"}' in text
        for name in ("npusuite_inspection_decision_seconds_count", "npusuite_process_resident_memory_bytes",
                     "npusuite_host_cpu_usage_ratio"):
            assert name in text
        assert "npusuite_device_" not in text  # CPU: absent, not zero
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_inspection_run_on_a_busy_metrics_port_is_one_line_error(tiny_model: Path, small_data: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "npusuite.platform", "inspection", "run", "--source", str(small_data / "washer"),
             "--model", str(tiny_model), "--metrics-port", str(port)], capture_output=True, text=True, timeout=300)
    errors = [x for x in proc.stderr.splitlines() if x.startswith("npusuite: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "--metrics-port" in errors[0], proc.stderr[-2000:]
