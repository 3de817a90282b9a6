"""`npusuite edge agent` under a stand-in for systemd (its unit is ``Type=notify`` with a watchdog):
READY=1 once the line runs, WATCHDOG=1 more often than ``WatchdogSec`` while it idles, STOPPING=1 on
SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import cv2

from npusuite.edge.simulate import sample_frames, write_sim_model


def test_the_agent_speaks_sd_notify_as_its_unit_expects(tmp_path):
    frames, _ = sample_frames(3, seed=5)
    (tmp_path / "frames").mkdir()
    for f in frames:
        cv2.imwrite(str(tmp_path / "frames" / f.name), f.image)
    write_sim_model(tmp_path / "model", "line-a", "1.0.0")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", str(tmp_path / "box"),
                             "--device-id", "box-1", "--source", str(tmp_path / "frames"), "--pipeline", "sim",
                             "--model", str(tmp_path / "model"), "--keep-running"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = notify.recv(4096).decode()
        assert first.startswith("READY=1"), (first, proc.poll())
        notify.settimeout(2)
        pings = [notify.recv(4096).decode() for _ in range(3)]  # the line idles after its 3 frames
        assert pings == ["WATCHDOG=1"] * 3
        proc.send_signal(signal.SIGTERM)
        notify.settimeout(20)
        tail = []
        while "STOPPING=1" not in tail:
            tail.append(notify.recv(4096).decode())
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
