"""The agent process, its fleet and its status endpoint together: an assigned update is applied and shown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import cv2
import httpx

from npusuite.edge.bundles import make_bundle
from npusuite.edge.fleet_server import create_app
from npusuite.edge.fleet_store import FleetStore
from npusuite.edge.release import ReleaseRepository
from npusuite.edge.simulate import sample_frames, write_sim_model

ADMIN = "fleet-admin"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout_s: float = 90, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_agent_takes_campaign_update_and_reports_status(tmp_path, serve):
    repo = ReleaseRepository.init(tmp_path / "release")
    store = FleetStore(tmp_path / "fleet.db")
    fleet = serve(create_app(store, ADMIN, tmp_path / "release"))
    admin = httpx.Client(base_url=fleet.url, headers={"Authorization": f"Bearer {ADMIN}"})
    enroll = admin.post("/api/enrollment-tokens", json={"uses": 1}).json()["enrollment_token"]

    def publish(version: str, mode: str) -> str:
        model = write_sim_model(tmp_path / f"m{version}", "line-a", version, mode=mode)
        target = f"models/line-a-{version}.tar.gz"
        repo.add_target(target, make_bundle(model, tmp_path / f"{version}.tgz", "line-a", version), version)
        return target

    frames, _ = sample_frames(20)
    (tmp_path / "frames").mkdir()
    for f in frames:
        cv2.imwrite(str(tmp_path / "frames" / f.name), f.image)
    status_port = _port()
    cmd = [sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", str(tmp_path / "box"),
           "--device-id", "box-9", "--source", str(tmp_path / "frames"), "--pipeline", "sim",
           "--fleet-url", fleet.url, "--enroll-token", enroll, "--trusted-root", str(repo.trusted_root_path),
           "--heartbeat-s", "0.5", "--status-port", str(status_port), "--status-token", "st", "--keep-running"]
    log = (tmp_path / "agent.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    status_url = f"http://127.0.0.1:{status_port}/status"
    auth = {"Authorization": "Bearer st"}
    try:
        def status():
            try:
                r = httpx.get(status_url, headers=auth, timeout=5)
                return r.json() if r.status_code == 200 else None
            except httpx.HTTPError:
                return None

        first = wait_for(status, what="agent status endpoint")
        assert first["slots"]["active"] is None and first["update"]["state"] == "idle"
        assert httpx.get(status_url, timeout=5).status_code == 401
        wait_for(lambda: store.devices(), what="enrolment")

        for version, mode, expect_state, expect_camp in [("1.0.0", "ok", "committed", "completed"),
                                                         ("1.1.0", "crash", "rolled_back", "halted")]:
            cid = admin.post("/api/campaigns", json={"target": publish(version, mode), "version": version,
                                                     "stages_pct": [100]}).json()["id"]
            s = wait_for(lambda cid=cid: (st := status()) and st["update"]["campaign_id"] == cid
                         and st["update"]["state"] in ("committed", "rolled_back", "refused") and st,
                         what=f"update {version}")
            assert s["update"]["state"] == expect_state, s["update"]
            camp = wait_for(lambda cid=cid: (c := admin.get(f"/api/campaigns/{cid}").json())["status"] != "running"
                            and c, what="campaign result")
            assert camp["status"] == expect_camp, camp
        s = status()
        assert s["slots"]["committed"] == "a" and s["slots"]["slots"]["a"]["version"] == "1.0.0"
        assert s["slots"]["slots"]["b"]["status"] == "bad"
        assert "load failed" in s["update"]["health"]["reason"]
        assert s["stored"] > 0 and s["model"] == "line-a@1.0.0"  # the line ran the committed model
        metrics = httpx.get(f"http://127.0.0.1:{status_port}/metrics", headers=auth, timeout=5).text
        assert "npusuite_edge_outbox_pending_records" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "agent.log").read_text()[-3000:]
