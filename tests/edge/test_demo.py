"""The edge demo step starts a fleet server and an agent that installs its model through a signed campaign."""

from __future__ import annotations

import socket
import time

import httpx

from npusuite.edge.demo import step
from npusuite.platform.demo import DemoContext


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_step_runs_fleet_and_agent(tmp_path):
    ctx = DemoContext(tmp_path, bootstrap="127.0.0.1:1", admin_token="demo-admin")
    ctx.shared.update(edge_fleet_port=str(_port()), edge_status_port=str(_port()))
    try:
        step(ctx)
        status_url = next(s.url for s in ctx.services if s.name == "edge-agent")
        auth = {"Authorization": "Bearer demo-admin"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = httpx.get(status_url, headers=auth, timeout=5).json()
            if st["update"]["state"] == "committed" and st["stored"] > 0:
                break
            time.sleep(0.5)
        assert st["update"]["state"] == "committed", st["update"]
        assert st["slots"]["slots"]["a"]["version"] == "1.0.0" and st["model"] == "line-a@1.0.0"
    finally:
        ctx.stop_all()
    codes = {s.name: s.proc.returncode for s in ctx.services}
    # uvicorn re-raises SIGTERM after a clean shutdown, so the fleet server may report -15
    assert set(codes.values()) <= {0, -15}, (codes, [s.log.read_text()[-1500:] for s in ctx.services])
