"""Demo step: a signed release repository, a fleet server and one edge agent that takes its model through a campaign.

Under ``WORKDIR/edge/``: ``model-onnx/`` (the trained student exported by
``npusuite inspection export``), ``release/`` (TUF keys and repository),
``fleet.db``, ``box/`` (the agent's outbox and A/B slots) and ``frames/``
(the washer test images the line inspects).

The model is the one the demo just trained: the inspection step's
``WORKDIR/inspection/model`` when that step ran, else a short training of
its own under ``WORKDIR/edge/`` (``data/``, ``model/``).  It is exported to
ONNX (parity with torch checked on the test images), bundled, signed, and
rolled out through a fleet campaign; the agent runs it with ONNX Runtime on
the CPU through the platform engine and health-checks it on the bundle's
calibration images.  The release, TUF verification, A/B slots, health check,
fleet campaign, outbox and upload to the review app (when the review step
published ``review_url`` / ``review_ingest_token``) are the real ones.
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


def _trained_model(ctx: DemoContext, work) -> tuple:
    """(student folder, test images): the inspection step's, else a short training of the edge step's own."""
    shared = ctx.workdir / "inspection"
    if (shared / "model" / "inspection.json").is_file() and (shared / "data" / "washer" / "test").is_dir():
        return shared / "model", shared / "data" / "washer" / "test"
    data, model = work / "data", work / "model"
    ctx.prepare("edge: generate washer images", data / "washer" / "test", "inspection", "generate", "--out", str(data),
                "--products", "washer", "--train-good", "40", "--test-good", "10", "--per-defect", "3")
    ctx.prepare("edge: train teacher and student (short demo schedule)", model / "inspection.json", "inspection",
                "train", "--good", str(data / "washer"), "--out", str(model), "--teacher-steps", "40",
                "--student-steps", "40", "--batch-size", "8")
    return model, data / "washer" / "test"


def step(ctx: DemoContext) -> None:
    import shutil

    from npusuite.edge.bundles import make_bundle
    from npusuite.edge.fleet_store import FleetStore
    from npusuite.edge.release import ReleaseRepository
    from npusuite.inspection.images import list_images

    work = ctx.workdir / "edge"
    work.mkdir(parents=True, exist_ok=True)
    model, test_images = _trained_model(ctx, work)
    onnx_dir = work / "model-onnx"
    # --bf16: the export also judges the graph on OpenVINO at bf16 (kept only where torch's verdicts hold; on a CPU
    # without bf16 it says so); --int8 --int8-engine openvino: the int8 graph for OpenVINO (kept only where recall
    # holds; the fastest student on VNNI CPUs).  The agent below still runs fp32; `--precision bf16` or
    # `--precision int8` would take the kept variant.
    ctx.prepare("edge: export the trained student to ONNX (parity with torch on the test images; bf16 and "
                "OpenVINO int8 judged)", onnx_dir / "export.json", "inspection", "export", str(model), "--out",
                str(onnx_dir), "--images", str(test_images), "--bf16", "--int8", "--int8-engine", "openvino")
    release_dir = work / "release"
    repo = ReleaseRepository(release_dir) if (release_dir / "metadata" / "root.json").exists() \
        else ReleaseRepository.init(release_dir)
    if TARGET not in repo.targets():
        repo.add_target(TARGET, make_bundle(onnx_dir, work / f"line-a-{VERSION}.tar.gz", "line-a", VERSION), VERSION)
    frames_dir = work / "frames"
    if not frames_dir.exists():
        frames_dir.mkdir()
        for path in list_images(test_images):  # good and defective washers, in a flat folder
            shutil.copy(path, frames_dir / f"{path.parent.name}-{path.name}")

    store = FleetStore(work / "fleet.db")
    enroll = None if (work / "box" / "device-token").exists() else store.create_enrollment_token("demo", 1)
    fleet_port = int(ctx.shared.get("edge_fleet_port") or _port(FLEET_PORT))
    status_port = int(ctx.shared.get("edge_status_port") or _port(STATUS_PORT))
    fleet_url = f"http://127.0.0.1:{fleet_port}"
    ctx.start("edge-fleet", "edge", "fleet", "serve", "--db", str(work / "fleet.db"), "--port", str(fleet_port),
              "--release-dir", str(release_dir), url=fleet_url, ready=lambda: _up(f"{fleet_url}/healthz"))
    ctx.expose_metrics("npusuite-fleet", f"{fleet_url}/metrics")

    args = ["edge", "agent", "--box", str(work / "box"), "--device-id", "demo-box-1", "--source", str(frames_dir),
            "--pipeline", "inspection", "--device", "cpu", "--fleet-url", fleet_url,
            "--trusted-root", str(repo.trusted_root_path),
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
    ctx.expose_metrics("npusuite-edge", f"{status_url}/metrics", bearer_token=ctx.admin_token)

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
    ctx.notes.append(f"edge agent   {status_url}/status (Bearer admin token): slots, update state, outbox; "
                     f"runs {onnx_dir.name}/model.onnx (ONNX Runtime, CPU)")
