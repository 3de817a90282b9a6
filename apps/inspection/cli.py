"""``npusuite inspection``: generate data, train, score offline, run a live line.

Heavy libraries (torch, cv2) are imported inside the commands so ``npusuite
--help`` stays fast.  Bad input raises :class:`UserError` (one line, exit 2).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

app = typer.Typer(
    help=(
        "Visual defect inspection trained from good images only.\n\n"
        "Typical use:\n\n"
        "  npusuite inspection generate --out data\n\n"
        "  npusuite inspection train --good data/washer --out models/washer\n\n"
        "  npusuite inspection evaluate --model models/washer --data data/washer --out eval/washer\n\n"
        "  npusuite inspection score --model models/washer --images data/washer/test --out results.jsonl "
        "--save-heatmaps heat/\n\n"
        "  npusuite inspection export models/washer --out models/washer-onnx --images data/washer/test\n\n"
        "  npusuite inspection run --source clip.avi --model models/washer --modbus 127.0.0.1:5020"
    ),
    no_args_is_help=True,
)


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="Output folder (MVTec AD layout: PRODUCT/train/good, test/<defect>, "
                                                "ground_truth/<defect>/<name>_mask.png)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same images."),
    size_px: int = typer.Option(64, "--size", help="Image width and height in pixels (a multiple of 8)."),
    train_good: int = typer.Option(300, "--train-good", help="Good training images per product."),
    test_good: int = typer.Option(100, "--test-good", help="Good test images per product."),
    per_defect: int = typer.Option(15, "--per-defect", help="Test images per defect kind."),
    products: str = typer.Option("fabric,tile,washer", "--products", help=(
        "Comma-separated products: fabric, tile, washer; or the held-out 'leather' (defects fold, glue, poke, cut), "
        "kept for acceptance checks on a product nothing was developed against.")),
    defects: str | None = typer.Option(None, "--defects", help="Comma-separated subset of the products' defect "
                                                               "kinds (default: all)."),
    video: Path | None = typer.Option(None, "--video", help="Also write a line-camera clip (MJPG AVI) of one product "
                                                            "with some defective parts, for `inspection run`."),
) -> None:
    """Synthesise products (a textured fabric, a patterned tile, a discrete washer) with defects and masks."""
    from npusuite.inspection.generate import DEFECTS, HELDOUT_DEFECTS, GenerateConfig
    from npusuite.inspection.generate import generate as run

    chosen = tuple(p.strip() for p in products.split(",") if p.strip())
    unknown = [p for p in chosen if p not in DEFECTS and p not in HELDOUT_DEFECTS]
    if unknown or not chosen:
        raise UserError(f"unknown product(s) {unknown}; choose from {', '.join([*DEFECTS, *HELDOUT_DEFECTS])}")
    if size_px < 16 or size_px % 8:
        raise UserError("--size must be a multiple of 8, at least 16")
    if min(train_good, test_good, per_defect) < 0:
        raise UserError("--train-good, --test-good and --per-defect must be >= 0")
    kinds = tuple(k.strip() for k in defects.split(",") if k.strip()) if defects is not None else None
    try:
        counts = run(out, GenerateConfig(size_px=size_px, train_good=train_good, test_good=test_good,
                                         test_per_defect=per_defect, seed=seed), chosen, kinds)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for product, folders in counts.items():
        typer.echo(f"{product}: " + ", ".join(f"{k} {v}" for k, v in folders.items()))
    if video is not None:
        from npusuite.inspection.video import write_line_video

        n = write_line_video(video, chosen[-1], seed=seed, size_px=size_px)
        typer.echo(f"video: {video} ({n} frames of {chosen[-1]})")


@app.command()
def train(
    good: Path = typer.Option(..., "--good", help="PRODUCT folder (uses PRODUCT/train/good) or a folder of good "
                                                  "images."),
    out: Path = typer.Option(..., "--out", help="Model folder to write (student; the teacher goes to OUT/teacher)."),
    target_frr: float = typer.Option(0.01, "--target-frr", help=(
        "False-reject rate the threshold is calibrated to, on the 40% of good images held back from training (an "
        "exponential fit to the top 30% of their scores with a 90% bootstrap bound, never below the plain quantile "
        "at 1.5x the target), so the rate holds on fresh good parts too.")),
    size_px: int = typer.Option(128, "--size", help=(
        "Working resolution: the longer image side in pixels, aspect ratio kept; every image (any size) is "
        "resized to it, here and on the line.  Raise it when defects are thinner than source/size pixels.")),
    crop_px: int = typer.Option(64, "--crop", help=(
        "Side of the square crops of the working frame the nets train on (0 = whole frame).  A step costs the "
        "same whatever the camera resolution; the nets still run on the whole frame.")),
    teacher_steps: int = typer.Option(500, "--teacher-steps", help="Teacher training steps."),
    student_steps: int = typer.Option(600, "--student-steps", help="Student distillation steps."),
    batch_size: int = typer.Option(10, "--batch-size"),
    evaluate_after: bool = typer.Option(True, "--evaluate/--no-evaluate", help=(
        "With a PRODUCT folder whose test/ holds defect folders: evaluate both nets on it after training "
        "(OUT/evaluation.json and .png; the means go into the model card).")),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads", help="torch threads (1 is fastest on a busy shared CPU)."),
    feedback: Path | None = typer.Option(None, "--feedback", help=(
        "QC decisions (inspection/decisions.jsonl from `npusuite review export-labels`): this product's false "
        "rejects join the good images, its confirmed defects are held back to evaluate the nets on. "
        "OUT/feedback.json records what they changed.")),
    calibration: Path | None = typer.Option(None, "--calibration", help=(
        "A folder of more good images (any size), used only to place the thresholds, beside the 40% held back; "
        "never trained on.  80 held-back images make a 1% target a guess at the tail: with 200 or more the "
        "false-reject rate holds far more often (docs/inspection.md).")),
) -> None:
    """Train a teacher on synthetic anomalies, distil a small student, calibrate both thresholds."""
    from npusuite.inspection.train import TrainConfig
    from npusuite.inspection.train import train as run

    cfg = TrainConfig(target_frr=target_frr, size_px=size_px, crop_px=crop_px, teacher_steps=teacher_steps,
                      student_steps=student_steps, batch_size=batch_size, seed=seed, threads=threads,
                      evaluate=evaluate_after)
    summary = run(good, out, cfg, feedback=feedback, calibration=calibration)
    typer.echo(f"trained in {summary['train_seconds']:.0f} s on a {summary['size_px'][0]}x{summary['size_px'][1]} px "
               f"working frame ({summary['crop_px']} px crops; source {summary['source_size_px'][0]}x"
               f"{summary['source_size_px'][1]})")
    if "feedback" in summary:
        fb = summary["feedback"]
        typer.echo(f"feedback: {fb['good_added']} false rejects added to {summary['images'] - fb['good_added']} "
                   f"good images; {fb['defects']} confirmed defects held back "
                   f"(student flags {fb['student'].get('feedback_defects_flagged', 0)})")
    if summary["calibration_extra"]:
        typer.echo(f"calibration: {summary['holdout']} held-back + {summary['calibration_extra']} good images from "
                   f"{calibration}")
    for role in ("teacher", "student"):
        s = summary[role]
        typer.echo(f"{role}: {s['parameters']} parameters, {s['train_seconds']} s, threshold {s['threshold']:.4f}")
        if role in summary.get("evaluation", {}):
            e = summary["evaluation"][role]
            typer.echo(f"  on {good}/test: image AUROC {e['image_auroc']:.3f}, recall {e['recall']:.3f}, "
                       f"F1 {e['f1']:.3f} (mean over defect types)")
    typer.echo(f"model: {out} (teacher: {out / 'teacher'})" + (f"; evaluation: {out / 'evaluation.json'}"
                                                                if "evaluation" in summary else ""))


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="Model folder, or NAME[@VERSION|@ALIAS] with --model-root."),
    data: Path = typer.Option(..., "--data", help="MVTec-layout PRODUCT folder (or its test/): test/good, "
                                                  "test/<defect>, ground_truth/<defect>/<name>_mask.png."),
    out: Path = typer.Option(..., "--out", help="Folder for evaluation.json and evaluation.png."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Platform model repository."),
    teacher: bool = typer.Option(True, "--teacher/--no-teacher", help="Also evaluate the model's teacher/ when it "
                                                                      "has one (always at fp32)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, int8, or bf16 (an exported ONNX folder's "
                                                              "variant on OpenVINO)."),
    threads: int = typer.Option(1, "--threads"),
) -> None:
    """Image AUROC, pixel AUROC, PRO, recall/precision/F1 at the calibrated threshold per defect type, and the
    realised false-reject rate on test/good beside the target; exits 2 when an image could not be read.

    MODEL may be a trained folder or one written by `inspection export` (the ONNX graph that ships)."""
    from npusuite.inspection.evaluate import evaluate_models
    from npusuite.inspection.modelcard import load

    _threads(threads)
    if not data.is_dir():
        raise UserError(f"--data {data}: no such folder")
    student = load(model, model_root, precision=precision, threads=threads)
    models = [student]
    if teacher and (student.path / "teacher" / "inspection.json").is_file():
        models.append(load(student.path / "teacher", threads=threads))
    report = evaluate_models(models, data, out)
    for m in report.models:
        typer.echo(f"{m.role} {m.ref} ({m.runtime}): threshold {m.threshold:.4f}, false rejects "
                   f"{m.realised_frr:.2%} of {m.good_images} good (target {m.target_frr:.2%})")
        for kind, k in m.per_defect.items():
            pix = (f", pixel AUROC {k.pixel_auroc:.3f}, PRO {k.pro:.3f}" if k.pro is not None else "")
            typer.echo(f"  {kind:<14} {k.images:>4} img  image AUROC {k.image_auroc:.3f}  recall {k.recall:.3f}  "
                       f"F1 {k.f1:.3f}{pix}")
        if m.mean is not None:
            typer.echo(f"  {'mean':<14} {m.mean.images:>4} img  image AUROC {m.mean.image_auroc:.3f}  recall "
                       f"{m.mean.recall:.3f}  F1 {m.mean.f1:.3f}")
    typer.echo(f"report: {out / 'evaluation.json'}, figure: {out / 'evaluation.png'}")
    if report.skipped:
        raise UserError(f"{len(report.skipped)} images could not be read (first: {report.skipped[0].image}: "
                        f"{report.skipped[0].reason}); listed under 'skipped' in {out / 'evaluation.json'}")


@app.command()
def score(
    model: str = typer.Option(..., "--model", help="Model folder, or NAME[@VERSION|@ALIAS] with --model-root."),
    images: Path = typer.Option(..., "--images", help="Folder scored recursively."),
    out: Path = typer.Option(..., "--out", help="JSONL, one line per image file: image, score, defective, boxes, "
                                                "model; or image, model, skipped: true, reason."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Platform model repository."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, int8 (static int8, CPU), or bf16 (an exported "
                                                              "ONNX folder's variant on OpenVINO)."),
    batch: int = typer.Option(32, "--batch", help="Images per forward pass."),
    threads: int = typer.Option(1, "--threads"),
    save_heatmaps: Path | None = typer.Option(None, "--save-heatmaps", help=(
        "Also write each image's heatmap overlay here (DIR/<relative name>.png, at the image's own resolution, "
        "with a colour bar, the threshold outline and the score).")),
) -> None:
    """Score every image under --images (score lines: docs/contracts.md); exits 2 when any file could not be scored.

    MODEL may be a trained folder or one written by `inspection export` (its ONNX graph)."""
    from npusuite.inspection.heatmaps import save_overlay
    from npusuite.inspection.images import IMAGE_SUFFIXES, list_images, scan_folder
    from npusuite.inspection.inspector import Inspector
    from npusuite.inspection.records import Frame

    _threads(threads)
    if not images.is_dir():
        raise UserError(f"--images {images}: no such folder")
    if batch < 1:
        raise UserError("--batch must be >= 1")
    paths = list_images(images)
    if not paths:
        raise UserError(f"--images {images} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    inspector = Inspector.load(model, model_root, precision=precision, threads=threads)
    n = ng = 0
    skipped = []
    out.parent.mkdir(parents=True, exist_ok=True)

    # Lines go out in file order: a skipped file waits in `pending` with the frames decoded before it.
    def flush(pending: list, fh) -> None:
        nonlocal n, ng
        results = iter(inspector.inspect_batch([x for x in pending if isinstance(x, Frame)]))
        for x in pending:
            if isinstance(x, Frame):
                r = next(results)
                fh.write(json.dumps(r.to_json()) + "\n")
                if save_heatmaps is not None:
                    save_overlay((save_heatmaps / x.name).with_suffix(".png"), r.frame.image, r.heatmap, r.score,
                                 r.threshold)
                n, ng = n + 1, ng + r.defective
            else:
                fh.write(json.dumps({"image": x.name, "model": inspector.ref, "skipped": True,
                                     "reason": x.reason}) + "\n")
        pending.clear()

    with out.open("w") as fh:
        pending: list = []
        decoded = 0
        for seq, item in enumerate(scan_folder(images, paths)):
            if item.image is None:
                skipped.append(item)
                pending.append(item)
                continue
            pending.append(Frame(image=item.image, timestamp=time.time(), source=str(images), seq=seq,
                                 name=item.name))
            decoded += 1
            if decoded % batch == 0:
                flush(pending, fh)
        flush(pending, fh)
    typer.echo(f"scored {n} images with {inspector.ref}: {ng} NG, {n - ng} OK -> {out}")
    if skipped:
        first = skipped[0]
        raise UserError(f"{len(skipped)} of {len(paths)} images could not be scored (first: {first.name}: "
                        f"{first.reason}); each has a 'skipped' line in {out}")


def _hostport(value: str, default_port: int, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    if not port.isdigit():
        raise UserError(f"{what} {value!r}: expected HOST[:PORT]")
    return host, int(port)


def _line_metrics(line: str, window_ms: float, port: int, host: str, device: str, archive: Path | None, ready):
    """(LineMetrics, HealthServer) with the infrastructure collectors, or (None, None) when port is 0."""
    if not port:
        return None, None
    from prometheus_client import CollectorRegistry

    from npusuite.inspection.metrics import LineMetrics
    from npusuite.platform.observability.http import HealthServer
    from npusuite.platform.observability.infrastructure import register_infrastructure

    registry = CollectorRegistry()
    metrics = LineMetrics(registry, line, window_ms / 1000.0)
    register_infrastructure(registry, {"archive": archive} if archive else None, device)
    try:
        return metrics, HealthServer(registry, ready, host, port).start()
    except OSError as exc:
        raise UserError(f"--metrics-port {port}: cannot listen on {host}: {exc.strerror or exc}") from None


@app.command()
def run(
    source: str = typer.Option(..., "--source", help="Camera index (0), rtsp:// or http:// URL, video file or image "
                                                     "folder."),
    model: str = typer.Option(..., "--model", help="NAME[@VERSION|@ALIAS] in --model-root (hot-swaps when the alias "
                                                   "moves) or a model folder."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Platform model repository."),
    line: str = typer.Option("line-1", "--line", help="Line name (reject topic, archive and review records)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or int8."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda[:N] or npu[:N] (int8: cpu only)."),
    queue_size: int = typer.Option(8, "--queue-size", help="Frames buffered; when full the oldest is dropped."),
    max_batch: int = typer.Option(1, "--max-batch", help="Frames per forward pass when several are queued."),
    realtime: bool = typer.Option(True, "--realtime/--as-fast-as-possible", help="Pace a video file at its frame "
                                                                                 "rate, like a camera."),
    loop: bool = typer.Option(False, "--loop", help="Restart a video file at its end."),
    modbus: str | None = typer.Option(None, "--modbus", help="PLC HOST[:PORT] (default port 502) for the reject coil."),
    coil: int = typer.Option(0, "--coil", help="Reject coil address."),
    pulse_ms: float = typer.Option(100.0, "--pulse-ms", help="Coil high time; 0 = latch (the PLC clears it)."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="MQTT broker HOST[:PORT] (default 1883) for reject messages."),
    mqtt_topic: str = typer.Option("npusuite/inspection/reject", "--mqtt-topic"),
    window_ms: float = typer.Option(500.0, "--window-ms", help="A part's verdict is due within this time of capture."),
    fail_safe: bool = typer.Option(False, "--fail-safe", help="Reject parts with no verdict in their window (and "
                                                              "frames dropped unseen)."),
    archive: Path | None = typer.Option(None, "--archive", help="NG archive folder (image, heatmap, JSON per NG)."),
    archive_max: int = typer.Option(1000, "--archive-max-records", help="Keep at most this many NG records."),
    archive_max_mb: int = typer.Option(500, "--archive-max-mb", help="Keep at most this many MB of NG records."),
    review_url: str | None = typer.Option(None, "--review-url", help="Post NG results to this review app."),
    review_token_file: Path | None = typer.Option(None, "--review-token-file", help="File with the review app's "
                                                  "service token (default: NPUSUITE_REVIEW_INGEST_TOKEN)."),
    results: Path | None = typer.Option(None, "--results", help="Append every result as a JSON line here "
                                                                "(default: stdout)."),
    max_frames: int | None = typer.Option(None, "--max-frames", help="Stop after this many frames."),
    threads: int = typer.Option(1, "--threads"),
    shadow: str | None = typer.Option(None, "--shadow", metavar="ALIAS", help=(
        "Champion/challenger: also inspect every batch with the model's ALIAS (e.g. challenger; or NAME@TAG) from "
        "--model-root, following that alias, AFTER the champion's verdict is acted on.  It never changes verdicts, "
        "rejects, archives or results; its agreement (OK/NG confusion, mean |score/threshold| difference) is in "
        "the summary.  It costs its own forward pass per batch.")),
    shadow_report: Path | None = typer.Option(None, "--shadow-report", help="Also write the agreement as JSON "
                                              "here when the line stops (with --shadow)."),
    allow_no_plc: bool = typer.Option(False, "--allow-no-plc", help="Exit 0 even when no reject signal ever "
                                      "reached the PLC/broker (a dry run without one); by default that exits 2."),
    metrics_port: int = typer.Option(0, "--metrics-port", help="Serve Prometheus /metrics, /healthz and /readyz "
                                     "on this port (0: off)."),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address the metrics server listens on "
                                     "(default loopback; 0.0.0.0 for every interface)."),
) -> None:
    """Run a live line: capture, inspect, signal rejects, archive NG, post NG for review; Ctrl-C stops.

    Exits 2 when reject signals were due and not one reached --modbus/--mqtt (unless --allow-no-plc)."""
    from npusuite.inspection.archive import ArchiveConfig, NgArchive
    from npusuite.inspection.line import EngineInspectors, InspectionLine, LineConfig
    from npusuite.inspection.reject import RejectConfig, RejectSignaller
    from npusuite.inspection.review import ReviewConfig, ReviewPoster
    from npusuite.inspection.source import FrameSource, SourceConfig

    _threads(threads)
    if shadow_report is not None and not shadow:
        raise UserError("--shadow-report needs --shadow ALIAS")
    reject_cfg = RejectConfig(line=line, window_ms=window_ms, fail_safe=fail_safe, modbus_coil=coil, pulse_ms=pulse_ms,
                              mqtt_topic=mqtt_topic)
    if modbus:
        host, port = _hostport(modbus, 502, "--modbus")
        reject_cfg = RejectConfig(**{**reject_cfg.__dict__, "modbus_host": host, "modbus_port": port})
    if mqtt:
        host, port = _hostport(mqtt, 1883, "--mqtt")
        reject_cfg = RejectConfig(**{**reject_cfg.__dict__, "mqtt_host": host, "mqtt_port": port})
    poster = None
    if review_url:
        from npusuite.platform.settings import ReviewSettings

        token = review_token_file.read_text().strip() if review_token_file else ReviewSettings().ingest_token
        if not token:
            raise UserError("--review-url needs a service token: --review-token-file or NPUSUITE_REVIEW_INGEST_TOKEN")
        poster = ReviewPoster(ReviewConfig(url=review_url, token=token, line=line))
    src = FrameSource(SourceConfig(source, queue_size=queue_size, realtime=realtime, loop=loop))
    inspectors = EngineInspectors.open(model, model_root, device=device, precision=precision)
    challenger = None
    if shadow:
        from npusuite.inspection.shadow import ShadowInspector

        try:
            challenger = ShadowInspector.open(shadow, inspectors.engine, model_root, device, precision)
        except BaseException:
            inspectors.close()
            raise
    signaller = RejectSignaller(reject_cfg)
    ng_archive = NgArchive(ArchiveConfig(archive, archive_max, archive_max_mb * 1024 * 1024, line)) if archive else None
    out = results.open("a") if results else sys.stdout

    def sink(r) -> None:
        out.write(json.dumps(r.to_json(line=line, verdict=r.verdict)) + "\n")
        out.flush()

    line_metrics, health = _line_metrics(line, window_ms, metrics_port, metrics_host, device, archive,
                                         lambda: {"model": inspectors.ref is not None,
                                                  "source": not src.stats().finished})
    the_line = InspectionLine(src, inspectors, LineConfig(line=line, max_batch=max_batch), signaller, ng_archive,
                              poster, sink, challenger, line_metrics)
    signal.signal(signal.SIGTERM, lambda *_: the_line.stop())
    logger.info("line %s: %s -> %s (reject: modbus %s, mqtt %s, window %.0f ms, fail-safe %s)", line, source,
                inspectors.ref, modbus, mqtt, window_ms, fail_safe)
    try:
        with src:
            the_line.run(max_frames=max_frames)
    except KeyboardInterrupt:
        pass
    finally:
        if health is not None:
            health.stop()
        signaller.close()
        if poster is not None:
            poster.close()
        inspectors.close()
        if challenger is not None:
            challenger.close()
        if results:
            out.close()
    summary = the_line.stats.summary()
    summary.update(source=src.stats().__dict__, reject={k: v for k, v in signaller.stats().__dict__.items()
                                                        if k != "sent"})
    if poster is not None:
        summary["review"] = poster.stats().__dict__
    if ng_archive is not None:
        summary["archive"] = {"records": len(ng_archive.records()), "deleted": ng_archive.deleted}
    if challenger is not None:
        summary["shadow"] = challenger.agreement.summary()
        if shadow_report is not None:
            challenger.write_report(shadow_report)
    logger.info("line %s stopped: %s", line, json.dumps(summary))
    print(json.dumps({"summary": summary}), file=sys.stderr)
    reject_stats = signaller.stats()
    if reject_stats.never_worked() and not allow_no_plc:
        raise UserError(f"no reject signal reached the line: all {reject_stats.send_errors} sends to "
                        f"{modbus or mqtt} failed (is the PLC reachable? --allow-no-plc to run without one)")


@app.command()
def export(
    model: str = typer.Argument(..., help="Student model folder (from `inspection train`) or NAME[@VERSION|@ALIAS] "
                                          "with --model-root."),
    out: Path = typer.Option(..., "--out", help="New folder for the exported model: model.onnx, onnx.json, the card "
                                                "and calibration images, export.json (parity report)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx: ONNX for ONNX Runtime (CPU, CUDA, CANN on Ascend); om: "
                                                     "the ONNX plus om/atc.sh and om/atc.json, the exact `atc` "
                                                     "command for an Ascend 310B (run where CANN is installed)."),
    teacher: bool = typer.Option(False, "--teacher", help="Also export MODEL/teacher to OUT/teacher."),
    int8: bool = typer.Option(False, "--int8", help="Also write model.int8.onnx (ONNX Runtime static int8, "
                                                    "calibrated on the stored good images), kept only if its recall "
                                                    "at the calibrated threshold is within 0.5 points of fp32 on "
                                                    "--images (needs defect images)."),
    int8_engine: str = typer.Option("onnxruntime", "--int8-engine",
                                    help="The engine --int8 writes its graph for: onnxruntime (QOperator; any "
                                         "device) or openvino (QDQ, run by OpenVINO on the CPU; on AVX-512 VNNI "
                                         "or AMX CPUs about 2x ONNX Runtime fp32 for the student)."),
    bf16: bool = typer.Option(False, "--bf16", help="Also offer a bf16 variant: model.onnx compiled by OpenVINO at "
                                                    "bf16 (Xeon AMX), kept only if its verdicts equal torch's and "
                                                    "its recall is within 0.5 points of fp32 on --images."),
    images: Path | None = typer.Option(None, "--images", help="Images to check parity (and int8 recall) on, e.g. "
                                                             "data/washer/test; folders named good hold good parts. "
                                                             "Default: the model's calibration images."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Platform model repository."),
    soc_version: str = typer.Option("Ascend310B1", "--soc-version", help="atc --soc_version (with --format om)."),
    om_precision: str = typer.Option("fp16", "--om-precision", help="atc precision for the .om: fp16 "
                                                                   "(force_fp16), fp32 (force_fp32) or mixed."),
    threads: int = typer.Option(1, "--threads"),
) -> None:
    """Export the student (and teacher) as ONNX with a dynamic batch axis, checked against torch.

    The export is refused unless ONNX Runtime and torch give the same verdicts on every image and heatmaps
    within 1e-3.  The exported folder is a platform model (kind onnx): `npusuite edge release bundle` ships it
    and the edge agent runs it with ONNX Runtime (`--precision int8`: the kept int8 graph, on OpenVINO when it was
    written with --int8-engine openvino; `--precision bf16`: the same graph on OpenVINO at bf16, where --bf16 kept
    it).  `inspection score` and `inspection evaluate` take the
    exported folder too, to judge the artefact that ships."""
    from npusuite.inspection.export import ExportConfig
    from npusuite.inspection.export import export as run
    from npusuite.platform.repository import resolve_reference

    _threads(threads)
    cfg = ExportConfig(format=fmt, teacher=teacher, int8=int8, bf16=bf16, images=images, soc_version=soc_version,
                       om_precision=om_precision, int8_engine=int8_engine)
    report = run(resolve_reference(model, model_root).path, out, cfg)
    for part in (report.student, report.teacher):
        if part is None:
            continue
        p = part.parity
        typer.echo(f"{part.role}: {out / ('' if part.role == 'student' else 'teacher') / part.onnx} "
                   f"({part.bytes} bytes); parity on {p.images} images: max heatmap diff {p.max_heat_diff:.1e}, "
                   f"{p.same_verdicts}/{p.images} same verdicts")
        if part.int8 is not None:
            typer.echo(f"  int8 ({part.int8.engine}) {'kept' if part.int8.kept else 'dropped'}: {part.int8.reason}")
        if part.bf16 is not None:
            typer.echo(f"  bf16 (OpenVINO) {'kept' if part.bf16.kept else 'dropped'}: {part.bf16.reason}")
        if part.atc is not None:
            typer.echo(f"  atc: {' '.join(part.atc.command)}\n  ({part.atc.note})")
    typer.echo(f"report: {out / 'export.json'}")


@app.command("plc-sim")
def plc_sim(
    port: int = typer.Option(5020, "--port", help="Modbus/TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host"),
    log: Path | None = typer.Option(None, "--log", help="Append every coil write here as a JSON line."),
) -> None:
    """A stand-in PLC for trying `run --modbus` without a line: a real pymodbus server logging coil writes."""
    from npusuite.inspection.plc_sim import main

    main(["--host", host, "--port", str(port)] + (["--log", str(log)] if log else []))
