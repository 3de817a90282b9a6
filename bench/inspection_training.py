"""Inspection training benchmark: minutes to train at 256 x 256 px, and what detection they buy.

Three recipes on one generated product (default: the held-out ``leather``, seed 1717, 200 good training
images), all measured in this run:

* ``before @256``: the recipe before issue 16 (whole 256 px frames, 500 teacher + 900 student steps,
  20% held back, empirical-quantile threshold) -- timed on ``--probe-steps`` steps of each net and
  **extrapolated** to the full step counts (running it would take about an hour here);
* ``before @64``: the same recipe on the product generated at 64 px (what the suite trained on until
  now): trained fully, so its detection is the "no worse than today" reference;
* ``defaults @256``: ``TrainConfig()`` (128 px working frame, 64 px crops, 500 + 600 steps, logits
  normalised per pixel, 40% held back, exponential-tail calibration): trained fully.

For the fully trained ones: wall and process-CPU minutes (CPU seconds do not depend on what else the
shared machine runs; wall ones do: the 1-minute load average is recorded before and after),
and ``inspection evaluate`` figures of the student (mean over defect types) on the test split plus the
realised false-reject rate on ``--fresh`` freshly generated good images (another seed), at the calibrated
threshold and at the plain empirical-quantile one (the rule before issue 16) of the same model.

Writes ``bench/out/inspection_training.json`` and ``bench/out/inspection_training.png``.
``--quick``: 40 + 40 steps and small sets (checks the script; the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from npusuite.inspection.evaluate import load_split, score_split
from npusuite.inspection.generate import GenerateConfig, generate
from npusuite.inspection.modelcard import load
from npusuite.inspection.train import TrainConfig, train

logger = logging.getLogger("bench.inspection_training")
OUT = Path(__file__).resolve().parent / "out"

BEFORE = TrainConfig(size_px=256, crop_px=0, teacher_steps=500, student_steps=900, holdout_fraction=0.2)


def _load() -> float:
    return os.getloadavg()[0]


def _probe_before(good: Path, work: Path, steps: int) -> dict:
    """Seconds per step of the pre-issue recipe at full resolution, from ``steps`` steps of each net."""
    cfg = replace(BEFORE, teacher_steps=steps, student_steps=steps, evaluate=False, progress=True)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = train(good, work, cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    t_s, s_s = summary["teacher"]["train_seconds"] / steps, summary["student"]["train_seconds"] / steps
    full = BEFORE.teacher_steps * t_s + BEFORE.student_steps * s_s
    overhead = wall - summary["teacher"]["train_seconds"] - summary["student"]["train_seconds"]
    return {"recipe": "before @256", "extrapolated": True, "probe_steps": steps,
            "teacher_s_per_step": round(t_s, 3), "student_s_per_step": round(s_s, 3),
            "wall_minutes": round((full + overhead) / 60, 2),
            "cpu_minutes": round(cpu * (full + overhead) / wall / 60, 2)}


def _full(name: str, product_root: Path, fresh_root: Path, work: Path, cfg: TrainConfig) -> dict:
    load0 = _load()
    t0, c0 = time.perf_counter(), time.process_time()
    summary = train(product_root, work, cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = load(work)
    scores = score_split(model, load_split(fresh_root), progress=False).scores
    ev = summary.get("evaluation", {}).get("student", {})
    return {"recipe": name, "extrapolated": False, "wall_minutes": round(wall / 60, 2),
            "cpu_minutes": round(cpu / 60, 2), "load_before": round(load0, 2), "load_after": round(_load(), 2),
            "size_px": summary["size_px"], "crop_px": summary["crop_px"],
            "student": ev, "fresh_good": int(scores.size),
            "fresh_frr": float((scores >= model.card.threshold).mean()),
            # the plain empirical-quantile threshold (the rule before issue 16) on the same fresh images
            "fresh_frr_empirical": float((scores >= model.card.calibration.empirical).mean()),
            "target_frr": cfg.target_frr, "threshold": summary["student"]["threshold"],
            "threshold_empirical": summary["student"]["threshold_empirical"]}


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["recipe"] for r in runs]
    x = np.arange(len(runs))
    a.bar(x - 0.2, [r["wall_minutes"] for r in runs], 0.4, label="wall (shared machine)")
    a.bar(x + 0.2, [r["cpu_minutes"] for r in runs], 0.4, label="process CPU")
    a.axhline(10, color="red", ls="--", lw=1, label="goal: 10 min")
    a.set_xticks(x, [n + (" (extrapolated)" if r["extrapolated"] else "") for n, r in zip(names, runs, strict=True)],
                 fontsize=8)
    a.set_yscale("log")
    a.set_ylabel("minutes to train (log)")
    a.set_title(f"training {result['train_good']} good images; defaults / before @256: "
                f"{result['ratio_cpu_defaults_vs_before']:.3f}x CPU", fontsize=9)
    a.legend(fontsize=8)
    full = [r for r in runs if not r["extrapolated"]]
    metrics = ("image_auroc", "recall", "f1")
    w = 0.8 / len(full)
    for i, r in enumerate(full):
        vals = [r["student"].get(m, np.nan) for m in metrics] + [r["fresh_frr"] / r["target_frr"] / 10,
                                                                 r["fresh_frr_empirical"] / r["target_frr"] / 10]
        b.bar(np.arange(5) + i * w, vals, w, label=r["recipe"])
    b.set_xticks(np.arange(5) + w * (len(full) - 1) / 2, ["image AUROC", "recall @thr", "F1 @thr",
                                                          "fresh FRR/target/10", "same, empir. thr"], fontsize=7)
    b.axhline(0.15, color="grey", ls=":", lw=1)
    b.set_ylim(0, 1.05)
    b.set_title(f"student, mean over defect types ({result['product']}, seed {result['seed']})", fontsize=9)
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--product", default="leather")
    ap.add_argument("--seed", type=int, default=1717)
    ap.add_argument("--train-good", type=int, default=200)
    ap.add_argument("--fresh", type=int, default=1000, help="fresh good images for the realised FRR")
    ap.add_argument("--probe-steps", type=int, default=6)
    ap.add_argument("--work", type=Path, default=Path("/tmp/npusuite-bench-inspection-training"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--skip-before64", action="store_true", help="skip the full pre-issue run at 64 px")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    q = args.quick
    steps = {"teacher_steps": 40, "student_steps": 40} if q else {}
    n_test, n_def, n_fresh = (20, 5, 100) if q else (100, 25, args.fresh)
    work = args.work
    data = {}
    for px in (256, 64):
        root = work / f"data{px}"
        if not (root / args.product).is_dir():
            generate(root, GenerateConfig(size_px=px, train_good=args.train_good, test_good=n_test,
                                          test_per_defect=n_def, seed=args.seed), (args.product,))
            generate(work / f"fresh{px}", GenerateConfig(size_px=px, train_good=0, test_good=n_fresh,
                                                         test_per_defect=0, seed=args.seed + 1),
                     (args.product,), defects=())
        data[px] = (root / args.product, work / f"fresh{px}" / args.product)
    runs: list[dict] = []

    def write() -> dict:
        """Written after every run, so a run cut short still leaves the figures measured so far."""
        result = {"product": args.product, "seed": args.seed, "train_good": args.train_good, "quick": q,
                  "cpus": os.cpu_count(), "runs": runs, "complete": False}
        before, defaults = runs[0], next((r for r in runs if r["recipe"] == "defaults @256"), None)
        if defaults is not None:
            result["ratio_wall_defaults_vs_before"] = defaults["wall_minutes"] / before["wall_minutes"]
            result["ratio_cpu_defaults_vs_before"] = defaults["cpu_minutes"] / before["cpu_minutes"]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "inspection_training.json").write_text(json.dumps(result, indent=2) + "\n")
        if defaults is not None:
            _plot(result, args.out / "inspection_training.png")
        return result

    runs.append(_probe_before(data[256][0] / "train" / "good", work / "m-before256", args.probe_steps))
    write()
    runs.append(_full("defaults @256", *data[256], work / "m-defaults256", TrainConfig(**steps)))
    write()
    if not args.skip_before64:
        runs.append(_full("before @64", *data[64], work / "m-before64", replace(BEFORE, size_px=64, **steps)))
    result = write()
    result["complete"] = True
    (args.out / "inspection_training.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
