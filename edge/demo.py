"""Demo step: a signed release repository, a fleet server and one edge agent that takes its model through a campaign.

Under ``WORKDIR/edge/``: ``release/`` (TUF keys and repository), ``fleet.db``,
``box/`` (the agent's outbox and A/B slots) and ``frames/`` (line images).

The line runs the simulated inspector (:mod:`npusuite.edge.simulate`) on
synthetic parts, because the demo box must start in seconds on any laptop;
the release, TUF verification, A/B slots, health check, fleet campaign,
outbox and upload to the review app (when the review step published
``review_url`` / ``review_ingest_token``) are the real ones.
"""

from __future__ import annotations

import logging
import socket
import time

import httpx

from npusuite.platform.demo import DemoContext

logger = logging.getLogger(__name__)

FLEET_PORT = 8600
STATUS_PORT = 8610
VERSION = "1.0.0"
TARGET = f"models/line-a-{VERSION}.tar.gz"


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _port(preferred: int) -> int:
    """``preferred`` when it is free, else any free loopback port (a second demo, a busy laptop)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(ctx: DemoContext) -> None:
    import cv2

    from npusuite.edge.bundles import make_bundle
    from npusuite.edge.fleet_store import FleetStore
    from npusuite.edge.release import ReleaseRepository
    from npusuite.edge.simulate import sample_frames, write_sim_model

    work = ctx.workdir / "edge"
    work.mkdir(parents=True, exist_ok=True)
    release_dir = work / "release"
    repo = ReleaseRepository(release_dir) if (release_dir / "metadata" / "root.json").exists() \
        else ReleaseRepository.init(release_dir)
    if TARGET not in repo.targets():
        model = write_sim_model(work / "model-src", "line-a", VERSION)
        repo.add_target(TARGET, make_bundle(model, work / f"line-a-{VERSION}.tar.gz", "line-a", VERSION), VERSION)
    frames_dir = work / "frames"
    if not frames_dir.exists():
        frames_dir.mkdir()
        frames, _ = sample_frames(200, seed=11, size=96)
        for f in frames:
            cv2.imwrite(str(frames_dir / f.name), f.image)

    store = FleetStore(work / "fleet.db")
    enroll = None if (work / "box" / "device-token").exists() else store.create_enrollment_token("demo", 1)
    fleet_port = int(ctx.shared.get("edge_fleet_port") or _port(FLEET_PORT))
    status_port = int(ctx.shared.get("edge_status_port") or _port(STATUS_PORT))
    fleet_url = f"http://127.0.0.1:{fleet_port}"
    ctx.start("edge-fleet", "edge", "fleet", "serve", "--db", str(work / "fleet.db"), "--port", str(fleet_port),
              "--release-dir", str(release_dir), url=fleet_url, ready=lambda: _up(f"{fleet_url}/healthz"))

    args = ["edge", "agent", "--box", str(work / "box"), "--device-id", "demo-box-1", "--source", str(frames_dir),
            "--pipeline", "sim", "--fleet-url", fleet_url, "--trusted-root", str(repo.trusted_root_path),
            "--heartbeat-s", "2", "--status-port", str(status_port), "--status-token", ctx.admin_token,
            "--frame-interval-ms", "500", "--keep-running", "--line", "line-a"]
    if enroll:
        args += ["--enroll-token", enroll]
    if ctx.shared.get("review_url") and ctx.shared.get("review_ingest_token"):
        token_file = work / "ingest-token"
        token_file.write_text(ctx.shared["review_ingest_token"])
        token_file.chmod(0o600)
        args += ["--review-url", ctx.shared["review_url"], "--ingest-token-file", str(token_file)]
    status_url = f"http://127.0.0.1:{status_port}"
    ctx.start("edge-agent", *args, url=f"{status_url}/status", ready=lambda: _up(f"{status_url}/healthz"))

    admin = httpx.Client(base_url=fleet_url, headers={"Authorization": f"Bearer {ctx.admin_token}"}, timeout=10)
    deadline = time.monotonic() + 60
    while not admin.get("/api/devices").json() and time.monotonic() < deadline:
        time.sleep(0.5)
    done = any(c["target"] == TARGET and c["status"] in ("running", "completed")
               for c in admin.get("/api/campaigns").json())
    if not done:
        resp = admin.post("/api/campaigns", json={"target": TARGET, "version": VERSION, "stages_pct": [100]})
        logger.info("edge: campaign %s for %s started", resp.json().get("id"), TARGET)
    ctx.notes.append(f"edge fleet   {fleet_url}/api/campaigns (Bearer admin token); TUF repo at {fleet_url}/tuf/")
    ctx.notes.append(f"edge agent   {status_url}/status (Bearer admin token): slots, update state, outbox")
