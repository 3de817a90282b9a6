"""``npusuite edge``: the edge agent, signed releases (TUF) and the fleet server."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help=(
    "Edge boxes on factory lines: `agent` runs the inspection line with a durable outbox and signed "
    "A/B updates; `release` signs bundles with TUF; `fleet` enrols boxes and rolls updates out in stages."))
release_app = typer.Typer(no_args_is_help=True, help=(
    "Sign update bundles with TUF (root/targets/snapshot/timestamp). Keys live in DIR/keys/ROLE/KEYID.pem; "
    "serve DIR/repository (e.g. `npusuite edge fleet serve --release-dir DIR` serves it at /tuf)."))
fleet_app = typer.Typer(no_args_is_help=True, help="The fleet server: enrolment, heartbeats, staged rollouts.")
app.add_typer(release_app, name="release")
app.add_typer(fleet_app, name="fleet")


# -- agent -------------------------------------------------------------------
@app.command()
def agent(
    box: Path = typer.Option(..., "--box", help="The box's state folder: outbox.db, state.json, slots/a|b, tuf/."),
    device_id: str = typer.Option(..., "--device-id", help="This box's name in the fleet and in result ids."),
    source: str = typer.Option(..., "--source", help="Camera index, rtsp:// or http:// URL, video file or image "
                               "folder (folders and videos resume where a restart left off)."),
    line: str = typer.Option("line-1", "--line", help="Production line name sent with every result."),
    product: str | None = typer.Option(None, "--product"),
    model: Path | None = typer.Option(None, "--model", help="Run this model folder (no updates change it). "
                                      "Default: the committed A/B slot."),
    pipeline: str = typer.Option("inspection", "--pipeline", help="inspection: the trained model of the "
                                 "bundle (or --model) on the platform runtime its folder selects: ONNX Runtime for "
                                 "an exported model.onnx, torch for a torch folder. sim: a simulated scorer, ONLY "
                                 "for fleet-scale simulations (many boxes on one machine); it inspects nothing."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda[:N] or npu[:N]. An ONNX bundle runs with the "
                               "device's ONNX Runtime provider: CPU, CUDA (onnxruntime-gpu) or CANN "
                               "(onnxruntime-cann, Ascend 310B)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32; int8: the bundle's int8 graph (kept by "
                                  "`inspection export --int8` only where recall held); bf16: the bundle's graph on "
                                  "OpenVINO at bf16 (Xeon AMX; kept by `inspection export --bf16` only where torch's "
                                  "verdicts and recall held). A bundle without the variant is refused."),
    review_url: str | None = typer.Option(None, "--review-url", help="Upload results to this review app's "
                                          "POST /api/ingest/inspections."),
    ingest_token: str | None = typer.Option(None, "--ingest-token", help="Service token for the review ingest "
                                            "(default: NPUSUITE_REVIEW_INGEST_TOKEN)."),
    ingest_token_file: Path | None = typer.Option(None, "--ingest-token-file", help="Read the ingest token from "
                                                  "this file (keeps it out of the process list)."),
    send_ok: bool = typer.Option(False, "--send-ok/--ng-only", help="Also send OK results to the review app "
                                 "(each becomes a case there); default: NG only. Kafka always gets all."),
    kafka_bootstrap: str | None = typer.Option(None, "--kafka-bootstrap", help="Or produce results to Kafka."),
    kafka_topic: str = typer.Option("inspection-results", "--kafka-topic"),
    fleet_url: str | None = typer.Option(None, "--fleet-url", help="Fleet server: heartbeats and assigned updates."),
    enroll_token: str | None = typer.Option(None, "--enroll-token", help="One-time enrolment token (first start)."),
    tuf_url: str | None = typer.Option(None, "--tuf-url", help="TUF repository base (default FLEET_URL/tuf)."),
    trusted_root: Path | None = typer.Option(None, "--trusted-root", help="The release's 1.root.json, trusted "
                                             "on first start (provisioning)."),
    health_samples: Path | None = typer.Option(None, "--health-samples", help="Images for update health checks "
                                               "(good/ and ng/ sub-folders add expected verdicts). Default: each "
                                               "bundle's own calibration images (good parts, expected OK)."),
    max_p95_latency_ms: float = typer.Option(2000.0, "--max-p95-latency-ms", help="Health-check latency limit."),
    heartbeat_s: float = typer.Option(5.0, "--heartbeat-s"),
    status_port: int | None = typer.Option(None, "--status-port", help="Serve GET /status and /metrics here."),
    status_token: str | None = typer.Option(None, "--status-token", help="Bearer token for /status and /metrics."),
    fsync: str = typer.Option("full", "--fsync", help="Outbox durability: full (every commit, survives power "
                              "loss), normal (at checkpoints), off (OS decides)."),
    max_outbox_mb: float = typer.Option(256.0, "--max-outbox-mb", help="Disk budget; when full, oldest OK "
                                        "results are dropped first, NG never."),
    frame_interval_ms: float = typer.Option(0.0, "--frame-interval-ms", help="Pause between frames (takt time)."),
    modbus: str | None = typer.Option(None, "--modbus", help="PLC HOST[:PORT] whose reject coil is set for NG "
                                      "parts (after the result is stored)."),
    coil: int = typer.Option(0, "--coil", help="Reject coil address."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="MQTT broker HOST[:PORT] for reject messages."),
    mqtt_topic: str = typer.Option("npusuite/inspection/reject", "--mqtt-topic"),
    reject_window_ms: float = typer.Option(500.0, "--reject-window-ms", help="A verdict must come within this "
                                           "time of capture to signal."),
    fail_safe: bool = typer.Option(False, "--fail-safe", help="Reject parts with no verdict in their window."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Stay up (heartbeats, updates, uploads) "
                                      "after a folder/video source ends, until SIGTERM."),
) -> None:
    """Run the inspection line on this box: every result is stored in the outbox before any action.

    The model is the committed A/B slot's bundle (signed, from `npusuite edge release`), normally the ONNX
    student from `npusuite inspection export`, run by ONNX Runtime on --device; updates come through the fleet
    server's staged campaigns, are health-checked on the bundle's calibration images and roll back on failure."""
    from npusuite.edge.pipeline import bundle_samples, factory_for, load_samples
    from npusuite.edge.runtime import AgentRuntime, RuntimeConfig
    from npusuite.inspection.source import FrameSource, SourceConfig, source_kind
    from npusuite.platform.settings import ReviewSettings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upload is noise; the syncer logs outages
    if fsync not in ("full", "normal", "off"):
        raise UserError("--fsync must be full, normal or off")
    kind = source_kind(source)
    factory = factory_for(pipeline, device, precision)
    expected = None
    if health_samples is not None:
        frames, expected = load_samples(health_samples)
    elif pipeline == "sim":
        from npusuite.edge.simulate import sample_frames

        frames, expected = sample_frames(8)
    else:
        frames = bundle_samples  # each candidate is checked on its own calibration images
    if ingest_token_file is not None:
        if not ingest_token_file.is_file():
            raise UserError(f"no such token file: {ingest_token_file}")
        ingest_token = ingest_token_file.read_text().strip()
    reject = None
    if modbus or mqtt:
        from npusuite.inspection.reject import RejectConfig

        fields: dict = {"line": line, "window_ms": reject_window_ms, "fail_safe": fail_safe, "modbus_coil": coil,
                        "mqtt_topic": mqtt_topic}
        if modbus:
            fields["modbus_host"], fields["modbus_port"] = _hostport(modbus, 502, "--modbus")
        if mqtt:
            fields["mqtt_host"], fields["mqtt_port"] = _hostport(mqtt, 1883, "--mqtt")
        reject = RejectConfig(**fields)
    settings = ReviewSettings()  # the same NPUSUITE_REVIEW_INGEST_TOKEN the review app accepts
    config = RuntimeConfig(
        box_dir=box, device_id=device_id, source=source, line=line, product=product, model_dir=model,
        review_url=review_url, ingest_token=ingest_token or settings.ingest_token,
        kafka_bootstrap=kafka_bootstrap, kafka_topic=kafka_topic, review_send_ok=send_ok, fleet_url=fleet_url,
        enroll_token=enroll_token,
        tuf_url=tuf_url, trusted_root=trusted_root, heartbeat_interval_s=heartbeat_s, status_port=status_port,
        status_token=status_token, outbox_fsync=fsync, outbox_max_bytes=int(max_outbox_mb * 1024 * 1024),
        frame_interval_ms=frame_interval_ms, max_p95_latency_ms=max_p95_latency_ms,
        exit_when_source_ends=not keep_running, replayable_source=kind in ("folder", "video"), reject=reject)
    runtime = AgentRuntime(config, factory, frames, expected)
    with FrameSource(SourceConfig(source, realtime=kind != "video")) as frame_source:
        final = runtime.run(frame_source)
    typer.echo(json.dumps({k: final[k] for k in ("device_id", "frames", "stored", "ng", "skipped_known",
                                                 "outbox")}, indent=2))


def _hostport(value: str, default_port: int, flag: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if ":" in value else (value, "", str(default_port))
    if not host or not port.isdigit():
        raise UserError(f"{flag} must be HOST or HOST:PORT, got {value!r}")
    return host, int(port)


# -- release -----------------------------------------------------------------
@release_app.command("init")
def release_init(
    dir: Path = typer.Argument(..., help="New release folder (keys/, metadata/, repository/)."),
    timestamp_days: float = typer.Option(1.0, "--timestamp-expires-days", help="Timestamp expiry; re-sign it "
                                         "before then with `release resign-timestamp`."),
) -> None:
    """Create ed25519 keys for root/targets/snapshot/timestamp and version-1 metadata."""
    from npusuite.edge.release import ReleaseRepository

    repo = ReleaseRepository.init(dir, {"timestamp": timedelta(days=timestamp_days)})
    typer.echo(f"release repository in {repo.dir}\nprovision boxes with --trusted-root {repo.trusted_root_path}")


@release_app.command("bundle")
def release_bundle(
    model_dir: Path = typer.Argument(..., help="Model folder to ship (becomes model/ in the bundle)."),
    out: Path = typer.Argument(..., help="Output .tar.gz."),
    name: str = typer.Option(..., "--name"),
    version: str = typer.Option(..., "--version"),
    kind: str = typer.Option("model", "--kind", help="model, app or firmware."),
) -> None:
    """Pack a model folder into an update bundle."""
    from npusuite.edge.bundles import make_bundle

    typer.echo(str(make_bundle(model_dir, out, name, version, kind)))


@release_app.command("add")
def release_add(
    dir: Path = typer.Argument(..., help="Release folder."),
    target: str = typer.Argument(..., help="Target path boxes ask for, e.g. models/line-a-1.2.0.tar.gz."),
    file: Path = typer.Argument(..., help="The bundle file."),
    version: str = typer.Option(..., "--version", help="PEP 440 version; boxes refuse older ones."),
    kind: str = typer.Option("model", "--kind"),
) -> None:
    """Sign and publish a bundle (bumps targets, snapshot and timestamp)."""
    from npusuite.edge.release import ReleaseRepository

    info = ReleaseRepository(dir).add_target(target, file, version, kind)
    typer.echo(f"published {target} {version}: {info.length} bytes, sha256 {info.hashes['sha256']}")


@release_app.command("resign-timestamp")
def release_resign_timestamp(
    dir: Path = typer.Argument(...),
    expires_hours: float = typer.Option(24.0, "--expires-hours", min=0.01),
) -> None:
    """Re-sign the timestamp with a fresh expiry (run it from cron well inside the expiry)."""
    from npusuite.edge.release import ReleaseRepository

    version = ReleaseRepository(dir).resign_timestamp(timedelta(hours=expires_hours))
    typer.echo(f"timestamp version {version}, expires in {expires_hours} h")


@release_app.command("rotate-key")
def release_rotate_key(
    dir: Path = typer.Argument(...),
    role: str = typer.Argument(..., help="root, targets, snapshot or timestamp."),
) -> None:
    """Replace a role's key: new root version trusting the new key, role re-signed with it."""
    from npusuite.edge.release import ReleaseRepository

    typer.echo(f"new {role} key {ReleaseRepository(dir).rotate_key(role)}")


@release_app.command("status")
def release_status(dir: Path = typer.Argument(...)) -> None:
    """Versions, expiries, key ids and targets of a release folder."""
    from npusuite.edge.release import ReleaseRepository

    typer.echo(json.dumps(ReleaseRepository(dir).status(), indent=2))


# -- fleet -------------------------------------------------------------------
@fleet_app.command("serve")
def fleet_serve(
    db: Path = typer.Option(Path("fleet.db"), "--db", help="SQLite file for devices, campaigns and audit."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8600, "--port"),
    release_dir: Path | None = typer.Option(None, "--release-dir", help="Serve DIR/repository at /tuf."),
    admin_token: str | None = typer.Option(None, "--admin-token", help="Management bearer token "
                                           "(default NPUSUITE_ADMIN_TOKEN); operators have their own."),
) -> None:
    """Serve the fleet API (management endpoints need a bearer token)."""
    import uvicorn

    from npusuite.edge.fleet_server import create_app
    from npusuite.edge.fleet_store import FleetStore
    from npusuite.platform.settings import AdminSettings

    token = admin_token or AdminSettings().admin_token
    if not token:
        logger.warning("no admin token: only operators (`npusuite edge fleet add-operator`) can manage the fleet")
    uvicorn.run(create_app(FleetStore(db), token, release_dir), host=host, port=port, log_level="warning")


@fleet_app.command("add-operator")
def fleet_add_operator(name: str = typer.Argument(...), db: Path = typer.Option(Path("fleet.db"), "--db")) -> None:
    """Create an operator and print their bearer token (shown once; only its hash is stored)."""
    from npusuite.edge.fleet_store import FleetStore

    typer.echo(FleetStore(db).add_operator(name))


@fleet_app.command("enrollment-token")
def fleet_enrollment_token(db: Path = typer.Option(Path("fleet.db"), "--db"),
                           uses: int = typer.Option(1, "--uses", min=1)) -> None:
    """Print a new enrolment token for USES boxes (audited as `cli`)."""
    from npusuite.edge.fleet_store import FleetStore

    typer.echo(FleetStore(db).create_enrollment_token("cli", uses))
