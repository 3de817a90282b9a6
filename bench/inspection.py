"""Inspection benchmark: detection quality and speed of teacher, student and int8 student vs a baseline.

1. Generates the dataset (``npusuite inspection generate``: fabric, tile,
   washer; 64x64) unless ``--data`` already holds it, and trains teacher +
   student per product unless ``--models`` already holds them.
2. Per product and per defect kind, for teacher, student, int8 student and
   the **baseline measured in the same run** (per-pixel mean/std of the same
   good training images, :mod:`npusuite.inspection.baseline`): image AUROC,
   pixel AUROC, recall at a 1% false-reject rate on the test set (threshold
   set on the test good images so that at most 1% of them are rejected), and
   recall / false-reject rate at each model's own threshold (calibrated at
   training time on held-back good images).
3. Speed, one frame at a time as on a line (1 torch thread): median latency
   and frames/s of teacher, student, int8 student and baseline, with ratios.
4. Runtimes, in the same run (``runtimes`` in the JSON): the last product's
   student exported by ``inspection export`` (ONNX, parity checked on its
   test images, int8 with the recall rule), then frames/s and p50/p99
   latency, one frame at a time, of the student on torch fp32, on ONNX
   Runtime fp32 and int8, on OpenVINO fp32 and bf16 (the same ``model.onnx``;
   bf16 only where the CPU offers it, with the export's ``--bf16`` decision:
   torch's verdicts and the recall rule), on OpenVINO int8 (a second export,
   ``--int8 --int8-engine openvino``: the QDQ graph, with its keep decision
   and verdicts), and the teacher on torch and ONNX Runtime; at 1
   thread (the line's setting) and at all cores.  Two views each: the whole
   ``Inspector.inspect`` (resize, forward, heatmap, boxes: what a line gets)
   and the forward pass alone.  Ratios are against torch fp32 measured in the
   same run, interleaved in rounds (this machine is shared and noisy).  The
   int8 graph is timed even when the recall rule drops it from the export,
   and the report says which.  The exported graphs carry the scoring head
   (heatmap and score computed by ONNX Runtime, see
   :mod:`npusuite.inspection.export`), so the ONNX 'inspect' is one ORT call
   plus numpy/OpenCV (resize in, boxes out) and the torch 'inspect' is the
   product's torch path (inference_mode, same thread count): both return the
   same heatmap at frame size, score and boxes.  'forward' is the net alone:
   torch ``net(x)``; ONNX the ``logits`` output requested from the session
   with a numpy input (the graph still runs its head: ORT does not prune it).

Writes ``bench/out/inspection.json``, ``bench/out/inspection.png`` (AUROC and
frames/s bars), ``bench/out/inspection_runtimes.png`` (frames/s per runtime)
and ``bench/out/inspection_examples.png`` (a grid of test images with ground
truth, student and teacher heatmaps and boxes).  ``--runtimes-only`` skips
steps 2-3 (the models must exist or are trained as in step 1).
``--quick``: fewer training steps and timing iterations (numbers are then
indicative only; the issue's goals are judged on a full run).
``--size N``: generate and train at N px (default 64, the suite's own
images; 128 is ``inspection train``'s default working size); data, models
and the runtimes JSON/PNG get a ``-N`` suffix when N is not 64.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from npusuite.inspection.baseline import PixelStatsBaseline
from npusuite.inspection.generate import PRODUCTS, GenerateConfig, generate
from npusuite.inspection.inspector import Inspector, heatmap_overlay
from npusuite.inspection.records import Frame
from npusuite.inspection.scoring import calibrate_threshold, heatmaps
from npusuite.inspection.source import list_images
from npusuite.inspection.train import TrainConfig, load_images, train

logger = logging.getLogger("bench.inspection")
OUT = Path(__file__).parent / "out"


def _masks(root: Path, kind: str, paths: list[Path]) -> np.ndarray:
    import cv2

    return np.stack([cv2.imread(str(root / "ground_truth" / kind / f"{p.stem}_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
                     for p in paths])


def _nets_heat(net, images: np.ndarray, smooth_px: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), 64):
            x = torch.from_numpy(images[i:i + 64]).permute(0, 3, 1, 2).contiguous()
            out.append(heatmaps(net(x), smooth_px).numpy())
    return np.concatenate(out)


def _recall_at_frr(good: np.ndarray, bad: np.ndarray, frr: float = 0.01) -> float:
    return float((bad >= calibrate_threshold(good, frr)).mean())


def _auroc(good: np.ndarray, bad: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.zeros(len(good)), np.ones(len(bad))], np.r_[good, bad]))


def evaluate(product_root: Path, scorers: dict) -> dict:
    """scorers: name -> (heatmap function, own threshold or None)."""
    test = product_root / "test"
    good_paths = list_images(test / "good")
    good = load_images(good_paths)
    kinds = sorted(d.name for d in test.iterdir() if d.is_dir() and d.name != "good")
    data = {k: (load_images(list_images(test / k)), _masks(product_root, k, list_images(test / k))) for k in kinds}
    result = {}
    for name, (heat_fn, own_threshold) in scorers.items():
        g_heat = heat_fn(good)
        g_scores = g_heat.reshape(len(good), -1).max(axis=1)
        per_kind, all_bad, pix_scores, pix_labels = {}, [], [g_heat.ravel()], [np.zeros(g_heat.size, bool)]
        for k, (imgs, masks) in data.items():
            h = heat_fn(imgs)
            s = h.reshape(len(imgs), -1).max(axis=1)
            all_bad.append(s)
            pix_scores.append(h.ravel())
            pix_labels.append(masks.ravel())
            per_kind[k] = {"image_auroc": round(_auroc(g_scores, s), 4),
                           "pixel_auroc": round(float(roc_auc_score(np.r_[np.zeros(g_heat.size), masks.ravel()],
                                                                    np.r_[g_heat.ravel(), h.ravel()])), 4),
                           "recall_at_1pct_frr": round(_recall_at_frr(g_scores, s), 4)}
        bad = np.concatenate(all_bad)
        entry = {"image_auroc": round(_auroc(g_scores, bad), 4),
                 "pixel_auroc": round(float(roc_auc_score(np.concatenate(pix_labels), np.concatenate(pix_scores))), 4),
                 "recall_at_1pct_frr": round(_recall_at_frr(g_scores, bad), 4),
                 "frr_at_1pct_threshold": round(float((g_scores >= calibrate_threshold(g_scores, 0.01)).mean()), 4),
                 "per_defect": per_kind}
        if own_threshold is not None:
            entry["own_threshold"] = {"threshold": round(own_threshold, 5),
                                      "recall": round(float((bad >= own_threshold).mean()), 4),
                                      "false_reject_rate": round(float((g_scores >= own_threshold).mean()), 4)}
        result[name] = entry
    result["test_images"] = {"good": len(good), "defective": int(sum(len(v[0]) for v in data.values()))}
    return result


def time_frames(fn, frames: list, iters: int) -> dict:
    for f in frames[:5]:
        fn(f)
    lat = []
    for i in range(iters):
        t0 = time.perf_counter()
        fn(frames[i % len(frames)])
        lat.append((time.perf_counter() - t0) * 1000)
    return _latency_stats(lat)


def _latency_stats(lat: list[float]) -> dict:
    med = statistics.median(lat)
    return {"latency_ms_p50": round(med, 3), "latency_ms_p90": round(float(np.percentile(lat, 90)), 3),
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 3), "fps": round(1000.0 / med, 1),
            "iterations": len(lat)}


def time_interleaved(fns: dict, frames: list, iters: int, rounds: int = 5) -> dict:
    """Latency of each fn in ``fns`` (name -> fn(frame)), run in alternating rounds so machine noise hits all."""
    for fn in fns.values():
        for f in frames[:5]:
            fn(f)
    lat: dict[str, list[float]] = {n: [] for n in fns}
    per_round = max(1, iters // rounds)
    for r in range(rounds):
        for name, fn in fns.items():
            for i in range(per_round):
                frame = frames[(r * per_round + i) % len(frames)]
                t0 = time.perf_counter()
                fn(frame)
                lat[name].append((time.perf_counter() - t0) * 1000)
    return {n: _latency_stats(v) for n, v in lat.items()}


def runtimes(product_root: Path, model_dir: Path, frames: list, iters: int, tag: str = "") -> dict:
    """Step 4 of the module docstring: export, then time torch vs ONNX Runtime (fp32, int8) per thread count."""
    import os
    import shutil
    import tempfile

    from npusuite.inspection.export import INT8_FILE, INT8_OPTIMIZATION, ExportConfig, export, quantize_int8
    from npusuite.inspection.modelcard import LoadedModel
    from npusuite.inspection.samples import calibration_batch
    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.onnx_runtime import ONNX_FILE, OnnxModule

    out = OUT / f"inspection-onnx{tag}" / product_root.name
    shutil.rmtree(out, ignore_errors=True)
    from npusuite.platform.runtime.openvino_session import supports

    report = export(model_dir, out, ExportConfig(teacher=True, int8=True, bf16=True, images=product_root / "test"))
    # the int8 graph written for OpenVINO (--int8-engine openvino), a second export of the same student
    ov_out = out.with_name(f"{out.name}-openvino-int8")
    shutil.rmtree(ov_out, ignore_errors=True)
    ov_report = (export(model_dir, ov_out, ExportConfig(int8=True, int8_engine="openvino",
                                                        images=product_root / "test"))
                 if supports("int8") else None)
    tmp = Path(tempfile.mkdtemp())
    calib = calibration_batch(model_dir)
    int8_path, ov_int8_path = out / INT8_FILE, ov_out / INT8_FILE
    if not int8_path.is_file():  # dropped by the recall rule: quantise again, only to time it
        int8_path = tmp / INT8_FILE
        quantize_int8(out / ONNX_FILE, int8_path, calib, "image")
    if ov_report is not None and not ov_int8_path.is_file():
        ov_int8_path = tmp / f"openvino-{INT8_FILE}"
        quantize_int8(out / ONNX_FILE, ov_int8_path, calib, "image", engine="openvino")
    cpu = get_device("cpu")
    student = Inspector.load(model_dir)
    teacher = Inspector.load(model_dir / "teacher")
    card, tcard = student.model.card, teacher.model.card
    x = torch.from_numpy(np.stack([f.image for f in frames[:1]])).permute(0, 3, 1, 2).float().div(255.0)
    xn = np.ascontiguousarray(x.numpy())
    cores = os.cpu_count() or 1
    result: dict = {"export": report.model_dump(mode="json"), "threads": {}, "cores": cores,
                    "int8_kept_by_export": report.student.int8.kept if report.student.int8 else False}
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        onnx_s = OnnxModule(out / ONNX_FILE, cpu, threads)
        onnx_q = OnnxModule(int8_path, cpu, threads, optimization=INT8_OPTIMIZATION)
        onnx_t = OnnxModule(out / "teacher" / ONNX_FILE, cpu, threads)
        inspectors = {
            "student_torch_fp32": student,
            "student_onnx_fp32": Inspector(LoadedModel(onnx_s, card, "student-onnx", out, "fp32")),
            "student_onnx_int8": Inspector(LoadedModel(onnx_q, card, "student-onnx-int8", out, "int8")),
            "student_openvino_fp32": Inspector(LoadedModel(
                OnnxModule(out / ONNX_FILE, cpu, threads, precision="fp32", engine="openvino"), card,
                "student-openvino", out, "fp32")),
            **({"student_openvino_bf16": Inspector(LoadedModel(
                OnnxModule(out / ONNX_FILE, cpu, threads, precision="bf16", engine="openvino"), card,
                "student-openvino-bf16", out, "bf16"))} if supports("bf16") else {}),
            **({"student_openvino_int8": Inspector(LoadedModel(
                OnnxModule(ov_int8_path, cpu, threads, precision="int8", engine="openvino"), card,
                "student-openvino-int8", ov_out, "int8"))} if ov_report is not None else {}),
            "teacher_torch_fp32": teacher,
            "teacher_onnx_fp32": Inspector(LoadedModel(onnx_t, tcard, "teacher-onnx", out / "teacher", "fp32")),
        }
        whole = time_interleaved({n: i.inspect for n, i in inspectors.items()}, frames, iters)

        def forward(net):
            if isinstance(net, OnnxModule):
                return lambda _frame: net.outputs(xn, ["logits"])

            def run(_frame):
                with torch.inference_mode():
                    net(x)
            return run
        fwd = time_interleaved({n: forward(i.model.net) for n, i in inspectors.items()}, frames, iters)
        base_w, base_f = whole["student_torch_fp32"]["fps"], fwd["student_torch_fp32"]["fps"]
        result["threads"][str(threads)] = {
            "inspect": whole, "forward": fwd,
            "fps_over_student_torch_fp32": {n: {"inspect": round(whole[n]["fps"] / base_w, 2),
                                                "forward": round(fwd[n]["fps"] / base_f, 2)} for n in inspectors},
        }
        logger.info("runtimes at %d thread(s): %s", threads,
                    {n: (whole[n]["fps"], fwd[n]["fps"]) for n in inspectors})
    torch.set_num_threads(1)
    shutil.rmtree(tmp, ignore_errors=True)
    one = result["threads"]["1"]["fps_over_student_torch_fp32"]
    result["goal_onnx_student_fps_ge_2x_torch"] = one["student_onnx_fp32"]["inspect"] >= 2.0
    result["onnx_student_forward_ge_2x_torch"] = one["student_onnx_fp32"]["forward"] >= 2.0
    result["onnx_int8_student_fps_ge_2x_torch"] = one["student_onnx_int8"]["inspect"] >= 2.0
    result["goal_onnx_student_same_verdicts"] = (report.student.parity.same_verdicts == report.student.parity.images)
    result["openvino_fp32_student_fps_ge_2x_torch"] = one["student_openvino_fp32"]["inspect"] >= 2.0
    bf16 = report.student.bf16
    result["bf16_kept_by_export"] = bool(bf16 and bf16.kept)
    result["bf16_decision"] = bf16.reason if bf16 else None
    if "student_openvino_bf16" in one:
        result["openvino_bf16_student_fps_ge_2x_torch"] = one["student_openvino_bf16"]["inspect"] >= 2.0
    if ov_report is not None:
        ov = ov_report.student.int8
        result["openvino_int8_export"] = ov.model_dump(mode="json")
        result["openvino_int8_kept_by_export"] = ov.kept
        # its verdicts against the fp32 graph's, which equal torch's (goal_onnx_student_same_verdicts)
        result["openvino_int8_same_verdicts"] = bool(ov.parity and ov.parity.same_verdicts == ov.parity.images
                                                     and result["goal_onnx_student_same_verdicts"])
        result["openvino_int8_student_fps_ge_2x_torch"] = one["student_openvino_int8"]["inspect"] >= 2.0
    result["size_px"] = card.size_px
    result["onnx_fused_head"] = inspectors["student_onnx_fp32"].fused
    result["note"] = ("batch 1, frames from the product's test set; 'inspect' = the whole Inspector.inspect: resize, "
                      "net, heatmap, score, boxes, heatmap at frame size (torch: the torch path; ONNX: the graph's "
                      "fused scoring head in one ORT call, numpy/OpenCV around it); 'forward' the net alone (ONNX: "
                      "logits requested, head still run); ratios against student_torch_fp32 in the same run, "
                      "interleaved in rounds")
    return result


def runtimes_png(path: Path, rt: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(next(iter(rt["threads"].values()))["inspect"])
    fig, axes = plt.subplots(1, len(rt["threads"]), figsize=(6 * len(rt["threads"]), 4), squeeze=False)
    for ax, (threads, part) in zip(axes[0], rt["threads"].items(), strict=True):
        idx = np.arange(len(keys))
        ax.bar(idx - 0.2, [part["inspect"][k]["fps"] for k in keys], 0.4, label="whole inspect")
        ax.bar(idx + 0.2, [part["forward"][k]["fps"] for k in keys], 0.4, label="forward only")
        ax.set_xticks(idx, [k.replace("_", "\n") for k in keys], fontsize=7)
        ax.set_ylabel("frames/s, batch 1")
        ratios = part["fps_over_student_torch_fp32"]
        r = ratios["student_onnx_fp32"]
        title = f"{threads} thread(s): ORT fp32 / torch = {r['inspect']:.2f}x inspect, {r['forward']:.2f}x forward"
        extra = [f"OpenVINO {p} / torch = {ratios[f'student_openvino_{p}']['inspect']:.2f}x"
                 for p in ("bf16", "int8") if f"student_openvino_{p}" in ratios]
        if extra:
            title += "\n" + ", ".join(extra) + " inspect"
        ax.set_title(title, fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid_png(path: Path, rows: list[tuple[str, Frame, np.ndarray, object, object]]) -> None:
    """rows: (label, frame, gt mask, student Inspection, teacher Inspection)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2 * len(rows)))
    for r, (label, frame, mask, s_ins, t_ins) in enumerate(rows):
        panels = [(frame.image[:, :, ::-1], label), (mask, "ground truth"),
                  (heatmap_overlay(s_ins)[:, :, ::-1], f"student {s_ins.score:.2f} {s_ins.verdict}"),
                  (heatmap_overlay(t_ins)[:, :, ::-1], f"teacher {t_ins.score:.2f} {t_ins.verdict}")]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bars_png(path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["baseline", "teacher", "student", "student_int8"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.2
    for i, n in enumerate(names):
        vals = [report["quality"][p][n]["image_auroc"] for p in report["products"]]
        a1.bar(np.arange(len(report["products"])) + i * width, vals, width, label=n)
    a1.set_xticks(np.arange(len(report["products"])) + 1.5 * width, report["products"])
    a1.set_ylim(0.5, 1.0)
    a1.set_ylabel("image AUROC (test set)")
    a1.legend(fontsize=8)
    fps = [report["speed"][n]["fps"] for n in names]
    a2.bar(names, fps, color=["grey", "C1", "C2", "C3"])
    a2.set_ylabel("frames/s, one frame at a time, 1 thread")
    a2.set_title(f"student/teacher fps = {report['speed']['student_over_teacher_fps']:.1f}x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=64, help="image and working size in px (64: the suite's images; "
                    "128: inspection train's default working size)")
    ap.add_argument("--data", type=Path, default=None, help="default bench/out/inspection-data[-SIZE]")
    ap.add_argument("--models", type=Path, default=None, help="default bench/out/inspection-models[-SIZE]")
    ap.add_argument("--teacher-steps", type=int, default=None)
    ap.add_argument("--student-steps", type=int, default=None)
    ap.add_argument("--products", default=",".join(PRODUCTS))
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--timing-iters", type=int, default=None)
    ap.add_argument("--runtimes-only", action="store_true", help="only step 4 (export + runtime speeds)")
    args = ap.parse_args()
    tag = "" if args.size == 64 else f"-{args.size}"
    args.data = args.data or OUT / f"inspection-data{tag}"
    args.models = args.models or OUT / f"inspection-models{tag}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    products = [p for p in args.products.split(",") if p]
    if not all((args.data / p / "test" / "good").is_dir() for p in products):
        generate(args.data, GenerateConfig(size_px=args.size), tuple(products))
    t_steps = args.teacher_steps or (100 if args.quick else 500)
    s_steps = args.student_steps or (100 if args.quick else 900)
    report: dict = {"products": products, "quick": args.quick, "quality": {}, "training": {}}
    iters = args.timing_iters or (60 if args.quick else 300)
    if args.runtimes_only:
        product = products[-1]
        model_dir = args.models / product
        if not (model_dir / "inspection.json").is_file():
            train(args.data / product, model_dir, TrainConfig(teacher_steps=t_steps, student_steps=s_steps,
                                                              batch_size=args.batch_size, size_px=args.size))
        frames = [Frame(img, time.time(), product, i) for i, img in enumerate(
            (load_images(list_images(args.data / product / "test"))[:16] * 255).round().astype(np.uint8))]
        rt = runtimes(args.data / product, model_dir, frames, iters, tag)
        (OUT / f"inspection_runtimes{tag}.json").write_text(json.dumps(rt, indent=2) + "\n")
        runtimes_png(OUT / f"inspection_runtimes{tag}.png", rt)
        json.dump({k: v for k, v in rt.items() if k != "export"}, sys.stdout, indent=2)
        print()
        return
    examples = []
    timing_frames = []
    for product in tqdm(products, desc="products"):
        model_dir = args.models / product
        if not (model_dir / "inspection.json").is_file():
            summary = train(args.data / product, model_dir, TrainConfig(teacher_steps=t_steps, student_steps=s_steps,
                                                                        batch_size=args.batch_size,
                                                                        size_px=args.size))
            report["training"][product] = {k: summary[k] for k in ("teacher", "student", "holdout", "images")}
        student = Inspector.load(model_dir)
        teacher = Inspector.load(model_dir / "teacher")
        int8 = Inspector.load(model_dir, precision="int8")
        base = PixelStatsBaseline.fit(load_images(list_images(args.data / product / "train" / "good")),
                                      student.model.card.smooth_px)
        scorers = {
            "baseline": (base.heatmaps, None),
            "teacher": (lambda x, m=teacher: _nets_heat(m.model.net, x, m.model.card.smooth_px), teacher.threshold),
            "student": (lambda x, m=student: _nets_heat(m.model.net, x, m.model.card.smooth_px), student.threshold),
            "student_int8": (lambda x, m=int8: _nets_heat(m.model.net, x, m.model.card.smooth_px), int8.threshold),
        }
        report["quality"][product] = evaluate(args.data / product, scorers)
        (OUT / "inspection.partial.json").write_text(json.dumps(report, indent=2) + "\n")  # survives an abort
        logger.info("%s: %s", product, {n: {k: report["quality"][product][n][k] for k in ("image_auroc",
                    "recall_at_1pct_frr")} for n in scorers})
        test = args.data / product / "test"
        for kind in sorted(d.name for d in test.iterdir() if d.is_dir())[:3]:
            path = list_images(test / kind)[0]
            frame = Frame(load_images([path])[0].__mul__(255).round().astype(np.uint8), time.time(), str(path), 0)
            mask_path = args.data / product / "ground_truth" / kind / f"{path.stem}_mask.png"
            mask = load_images([mask_path])[0][:, :, 0] if mask_path.is_file() else np.zeros(frame.image.shape[:2])
            examples.append((f"{product}/{kind}", frame, mask, student.inspect(frame), teacher.inspect(frame)))
            timing_frames.append(frame)
        timing = {"student": student, "teacher": teacher, "student_int8": int8, "baseline": base}
    speed = {}
    for name in ("teacher", "student", "student_int8"):
        speed[name] = time_frames(timing[name].inspect, timing_frames, iters)
    speed["baseline"] = time_frames(lambda f: base.scores(f.image[None].astype(np.float32) / 255.0), timing_frames,
                                    iters)
    speed["student_over_teacher_fps"] = round(speed["student"]["fps"] / speed["teacher"]["fps"], 2)
    speed["int8_over_student_fps"] = round(speed["student_int8"]["fps"] / speed["student"]["fps"], 2)
    speed["parameters"] = {"teacher": sum(p.numel() for p in timing["teacher"].model.net.parameters()),
                           "student": sum(p.numel() for p in timing["student"].model.net.parameters())}
    speed["note"] = "whole Inspector.inspect per frame (resize, forward, heatmap, boxes), 1 torch thread, shared CPU"
    report["speed"] = speed
    report["runtimes"] = runtimes(args.data / products[-1], args.models / products[-1], timing_frames, iters)
    runtimes_png(OUT / "inspection_runtimes.png", report["runtimes"])
    q = report["quality"]
    mean = {n: round(float(np.mean([q[p][n]["recall_at_1pct_frr"] for p in products])), 4)
            for n in ("baseline", "teacher", "student", "student_int8")}
    auroc = {n: round(float(np.mean([q[p][n]["image_auroc"] for p in products])), 4)
             for n in ("baseline", "teacher", "student", "student_int8")}
    report["goals"] = {
        "student_recall_at_1pct_frr_mean": mean["student"],
        "recall_at_1pct_frr_mean": mean,
        "image_auroc_mean": auroc,
        "goal_student_recall_ge_0_99": mean["student"] >= 0.99,
        "goal_student_beats_baseline_every_product": all(
            q[p]["student"]["image_auroc"] > q[p]["baseline"]["image_auroc"] for p in products),
        "goal_student_fps_ge_4x_teacher": speed["student_over_teacher_fps"] >= 4.0,
        "student_minus_teacher_auroc_points": round(100 * (auroc["student"] - auroc["teacher"]), 2),
        "goal_student_auroc_within_1_point": abs(auroc["student"] - auroc["teacher"]) <= 0.01,
        "goal_onnx_student_fps_ge_2x_torch": report["runtimes"]["goal_onnx_student_fps_ge_2x_torch"],
        "goal_onnx_student_same_verdicts": report["runtimes"]["goal_onnx_student_same_verdicts"],
    }
    (OUT / "inspection.json").write_text(json.dumps(report, indent=2) + "\n")
    bars_png(OUT / "inspection.png", report)
    grid_png(OUT / "inspection_examples.png", examples)
    json.dump({"goals": report["goals"], "speed": {k: v for k, v in speed.items() if k != "parameters"}},
              sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
