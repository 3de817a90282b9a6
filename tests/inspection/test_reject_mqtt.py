"""The MQTT reject output against a real Mosquitto broker (skipped where mosquitto is not installed)."""

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from npusuite.inspection.records import Frame, Inspection
from npusuite.inspection.reject import RejectConfig, RejectSignaller
from npusuite.platform.kafka.broker import free_port

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto (the MQTT broker) is not installed")


@pytest.fixture
def mqtt_broker(tmp_path: Path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.1)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_ng_parts_are_published_on_the_reject_topic(mqtt_broker: int):
    import paho.mqtt.client as mqtt

    got: list[dict] = []
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    sub.on_subscribe = lambda *a, **k: subscribed.set()
    sub.on_message = lambda _c, _u, msg: got.append(json.loads(msg.payload))
    sub.on_connect = lambda c, *a, **k: c.subscribe("factory/line-7/reject", qos=1)
    sub.connect("127.0.0.1", mqtt_broker)
    sub.loop_start()
    assert subscribed.wait(30)
    cfg = RejectConfig(line="line-7", window_ms=5000, mqtt_host="127.0.0.1", mqtt_port=mqtt_broker,
                       mqtt_topic="factory/line-7/reject")
    signaller = RejectSignaller(cfg)
    time.sleep(0.5)  # the publisher connects asynchronously
    t = time.time()
    for seq, score in enumerate([0.2, 0.9, 0.7, 0.1]):
        frame = Frame(np.zeros((8, 8, 3), np.uint8), t, "cam", seq)
        signaller.open_part(seq, t)
        signaller.verdict(Inspection(frame, score, 0.5, np.zeros((8, 8), np.float32), [], 1.0, "washer@3"))
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    signaller.close()
    sub.loop_stop()
    sub.disconnect()
    assert [(m["seq"], m["reject"], m["reason"], m["model"]) for m in got] == [(1, True, "ng", "washer@3"),
                                                                                (2, True, "ng", "washer@3")]
    assert signaller.stats().send_errors == 0
