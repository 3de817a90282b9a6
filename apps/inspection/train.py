"""Training from good images only: teacher, distilled student, calibrated thresholds, evaluation.

Order (each step uses only what the previous ones produced):

1. Read the good images and bring every one to the *working frame*
   (:func:`~npusuite.inspection.images.working_shape`): the longer side
   becomes ``size_px`` (default 128), the aspect ratio of the first image is
   kept, both sides are multiples of the nets' down-sampling factor; images of
   any size are resized to it with area interpolation, exactly as the
   inspector resizes a live frame.  Hold back ``holdout_fraction`` of them (at
   least ``min_holdout``) for calibration; they are never trained on.
2. Train the teacher (:class:`~npusuite.inspection.nets.TeacherNet`) from
   scratch to segment DRAEM-style synthetic anomalies
   (:func:`~npusuite.inspection.synth.synthesize`) pasted on random
   ``crop_px`` x ``crop_px`` crops of the working frames: focal-weighted BCE
   plus soft Dice against the synthetic mask.  The nets are fully
   convolutional, so they are trained on crops and run on the whole frame:
   the cost of a step depends on ``crop_px`` and ``batch_size`` only, never on
   the camera's pixel count.
3. Distil the student (:class:`~npusuite.inspection.nets.StudentNet`) from the
   frozen teacher's outputs on fresh synthetic crops: BCE against the
   teacher's per-pixel probabilities (the soft target), plus
   ``gt_weight`` x the same loss against the synthetic mask (0 = pure
   distillation).
4. Normalise each net per pixel: its raw logits on the training good images
   (whole working frames) give a mean and standard deviation per pixel,
   stored in the net as buffers (:meth:`~npusuite.inspection.nets._UNet.set_normaliser`),
   so the heatmap says how unusual a pixel is *for that position* on good
   parts; the export carries them.  The teacher is normalised only after the
   student is distilled from its raw logits.
5. Calibrate each net's threshold on the held-back good images (whole working
   frames, ``holdout_fraction`` 40% by default: 80 of 200) to ``target_frr``
   with a tail fit (:func:`~npusuite.inspection.calibration.calibrate`), so
   the rate holds on fresh good parts and not only on the held-back ones.
6. When the good folder is an MVTec-layout product (``PRODUCT/train/good``)
   whose ``PRODUCT/test`` holds defect folders, evaluate both nets on that
   split (:mod:`npusuite.inspection.evaluate`): ``OUT/evaluation.json`` and
   ``OUT/evaluation.png``; the mean figures go into the model card.

What is traded (also in the model card's ``trade_off``): defects are seen at
the working resolution (a 1 px scratch on a 256 px image is half as strong at
128 px), and each training crop sees only ``crop_px`` of context, so a defect
defined by the position of a whole part (e.g. a part rotated as a whole) is
weaker evidence than one defined by local appearance.

With ``feedback`` (``inspection/decisions.jsonl`` from ``review
export-labels``, read by :mod:`npusuite.inspection.feedback`), QC's overruled
false rejects of this product join the good images in step 1, and its
confirmed defects are held back: after step 4 each net's score on them and how
many it flags are reported.  ``OUT/feedback.json`` records what the decisions
changed (counts and file lists), so a training run shows its analyst input.

Both nets are written with the platform's ``save_module`` plus an
``inspection.json`` (threshold, smoothing, working size, calibration);
see :mod:`npusuite.inspection.modelcard`.  Raises :class:`UserError` for a
missing folder, too few images or a working size the nets cannot take.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from npusuite.inspection import modelcard
from npusuite.inspection.calibration import CONFIDENCE, calibrate
from npusuite.inspection.feedback import Feedback, read_feedback
from npusuite.inspection.images import list_images, read_image, to_working, working_shape
from npusuite.inspection.nets import MIN_STD, StudentNet, TeacherNet, count_parameters
from npusuite.inspection.scoring import heatmaps, image_scores
from npusuite.inspection.synth import synthesize
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

#: the normaliser's edge correction (:func:`edge_ring_factors`): the tail quantile compared ring by ring, and the
#: distance from the frame edge from which rings count as interior.
RING_QUANTILE = 0.999
INTERIOR_RING_PX = 16

TRADE_OFF = ("trained on {crop}x{crop} px crops of a {w}x{h} px working frame (source {sw}x{sh} px): defects thinner "
             "than {ratio:.1f} source px lose contrast, and each crop sees {crop} px of context only; heat is "
             "normalised per pixel by {fit} training good images (wider near the frame edge, where good texture "
             "scores higher), so a frame must be framed like them; the "
             "threshold is calibrated on {hold} held-back good images (not trained on) with an exponential tail "
             "fit, so fewer good images for training")


@dataclass(frozen=True)
class TrainConfig:
    target_frr: float = 0.01
    #: working frame: the longer side in pixels (aspect ratio kept); every image is resized to it.
    size_px: int = 128
    #: square training crops of the working frame (0 = the whole frame's shorter side).
    crop_px: int = 64
    teacher_steps: int = 500
    student_steps: int = 600
    batch_size: int = 10
    teacher_lr: float = 2e-3
    student_lr: float = 3e-3
    teacher_widths: tuple[int, ...] = (24, 48, 96)
    student_widths: tuple[int, ...] = (8, 16, 32)
    gt_weight: float = 0.25
    holdout_fraction: float = 0.4
    min_holdout: int = 10
    smooth_px: int = 3
    #: widen the per-pixel normaliser near the frame edge (:func:`edge_ring_factors`).
    edge_rings: bool = True
    p_anomaly: float = 0.6
    #: calibration: upper confidence of the fitted quantile (see npusuite.inspection.calibration).
    calibration_confidence: float = CONFIDENCE
    #: evaluate on PRODUCT/test after training when it holds defect folders.
    evaluate: bool = True
    seed: int = 0
    #: torch intra-op threads; 1 is fastest on a busy shared CPU (no OpenMP spin contention).
    threads: int | None = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.target_frr < 1.0:
            raise UserError("--target-frr must be in (0, 1), e.g. 0.01 for 1% false rejects")
        if self.teacher_steps < 1 or self.student_steps < 1 or self.batch_size < 1:
            raise UserError("steps and batch size must be >= 1")
        if self.crop_px < 0:
            raise UserError("--crop must be >= 0 (0 = whole frame)")
        if self.size_px < self.multiple_px or self.size_px % self.multiple_px:
            raise UserError(f"--size {self.size_px} must be a positive multiple of {self.multiple_px} px (the nets "
                            f"halve the frame {len(self.teacher_widths) - 1} times)")

    @property
    def multiple_px(self) -> int:
        return 2 ** (max(len(self.teacher_widths), len(self.student_widths)) - 1)


def _calibration_images(folder: Path, shape: tuple[int, int]) -> np.ndarray:
    paths = list_images(folder) if Path(folder).is_dir() else []
    if not paths:
        raise UserError(f"--calibration {folder}: no images there (it takes a folder of good images, used only "
                        "for the threshold)")
    return load_images(paths, shape)


def good_folder(path: Path) -> Path:
    """``PRODUCT/`` (uses ``PRODUCT/train/good``) or any folder of good images."""
    if not path.is_dir():
        raise UserError(f"--good {path}: no such folder")
    nested = path / "train" / "good"
    return nested if nested.is_dir() else path


def load_images(paths: list[Path], shape: tuple[int, int] | None = None) -> np.ndarray:
    """``N x H x W x 3`` float32 BGR in [0, 1].  With ``shape = (width, height)`` every image is resized to it
    (:func:`~npusuite.inspection.images.to_working`); without, images of mixed sizes are refused.  Raises
    UserError on unreadable, oversized or (without ``shape``) mixed-size images."""
    out = []
    for p in paths:
        img = read_image(p)
        if shape is not None:
            img = to_working(img, shape)
        elif out and img.shape != out[0].shape:
            raise UserError(f"images differ in size: {paths[0]} is {out[0].shape[:2]}, {p} is {img.shape[:2]}")
        out.append(img)
    return np.stack(out).astype(np.float32) / 255.0


def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Extra nuisance on a good image: lighting gain, a 1-2 px shift, sensor noise."""
    out = img * rng.uniform(0.9, 1.1)
    shift = rng.integers(-2, 3, 2)
    out = np.roll(out, tuple(int(s) for s in shift), axis=(0, 1))
    out = out + rng.normal(0, 0.01, out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


def _crop(img: np.ndarray, rng: np.random.Generator, crop: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return img[y:y + crop, x:x + crop]


def _batch(images: np.ndarray, rng: np.random.Generator, size: int, p_anomaly: float,
           crop: int) -> tuple[torch.Tensor, ...]:
    idx = rng.integers(0, len(images), size)
    xs, ms = zip(*(synthesize(_augment(_crop(images[i], rng, crop), rng), rng, p_anomaly) for i in idx), strict=True)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    m = torch.from_numpy(np.stack(ms))[:, None]
    return x, m


def _seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Focal-weighted BCE + soft Dice; ``target`` may be soft (teacher probabilities)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    focal = ((1 - p_t) ** 2 * bce).mean()
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return 5.0 * focal + dice.mean()


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def edge_ring_factors(z: np.ndarray, quantile: float = RING_QUANTILE, interior_px: int = INTERIOR_RING_PX
                      ) -> np.ndarray:
    """``H x W`` factors >= 1 that widen the normaliser near the frame edge, from ``z`` (``N x H x W`` per-pixel
    z-scores of good frames).

    A ring is the set of pixels at one distance from the nearest frame edge.  Near the edge the nets see half
    their context, and their z-scores on good parts are heavier-tailed than inside: a texture cloud cut by the
    edge scores like a defect (docs/inspection.md, "The frame edge").  Per ring, ``q_d`` is the ``quantile`` of
    all its z-scores (a ring pools hundreds of pixels per frame, so a 0.999 quantile is stable where a
    per-pixel one would not be); the reference is the median ``q_d`` over the interior rings (distance >=
    ``interior_px``, or half the largest distance on small frames); a ring's factor is ``max(1, q_d / ref)``.
    Dividing z by it puts each ring's good tail where the interior's is, so one threshold fits the frame."""
    h, w = z.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w]
    ring = np.minimum(np.minimum(yy, xx), np.minimum(h - 1 - yy, w - 1 - xx))
    q = np.array([np.quantile(z[:, ring == d], quantile) for d in range(int(ring.max()) + 1)])
    ref = float(np.median(q[min(interior_px, int(ring.max()) // 2):]))
    if not ref > 0:  # a degenerate net (constant logits): leave the normaliser alone
        return np.ones((h, w), np.float32)
    return np.maximum(1.0, q / ref)[ring].astype(np.float32)


@torch.inference_mode()
def fit_normaliser(net: torch.nn.Module, images: np.ndarray, batch: int = 32, edge_rings: bool = True) -> None:
    """Store in ``net`` the per-pixel mean and standard deviation of its raw logits on ``images`` (good whole
    working frames; see :mod:`npusuite.inspection.nets`), the deviation widened near the frame edge by
    :func:`edge_ring_factors` unless ``edge_rings`` is False."""
    net.eval()
    logits = torch.cat([net(_to_tensor(images[i:i + batch]))[:, 0].float() for i in range(0, len(images), batch)])
    mean, std = logits.mean(0), logits.std(0).clamp_min(MIN_STD)
    if edge_rings:
        std = std * torch.from_numpy(edge_ring_factors(((logits - mean) / std).numpy()))
    net.set_normaliser(mean, std)


@torch.inference_mode()
def score_batch(net: torch.nn.Module, images: np.ndarray, smooth_px: int, batch: int = 64) -> np.ndarray:
    net.eval()
    out = [image_scores(heatmaps(net(_to_tensor(images[i:i + batch])), smooth_px))
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def _fit(net: torch.nn.Module, steps: int, lr: float, desc: str, make_target, images: np.ndarray,
         rng: np.random.Generator, cfg: TrainConfig, crop: int) -> list[float]:
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    # OneCycleLR divides by (pct_start * steps - 1): 10 steps at the usual 0.1 would divide by zero
    pct = 0.1 if abs(0.1 * steps - 1) > 1e-6 else 0.15
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct)
    losses = []
    net.train()
    # tqdm shows elapsed time, s/step and the time left: the measured cost of this run on this machine.
    with tqdm(range(steps), desc=desc, unit="step", disable=not cfg.progress, leave=False) as bar:
        for step in bar:
            x, m = _batch(images, rng, cfg.batch_size, cfg.p_anomaly, crop)
            loss = _seg_loss(net(x), make_target(x, m))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    net.eval()
    return losses


def _product_of(folder: Path) -> str:
    return folder.parent.parent.name if folder.name == "good" else folder.name


def _frame(paths: list[Path], cfg: TrainConfig) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(source width x height of the first image, working shape, crop side) for this run."""
    first = read_image(paths[0])
    source = (int(first.shape[1]), int(first.shape[0]))
    shape = working_shape(*source, cfg.size_px, cfg.multiple_px)
    short = min(shape)
    crop = min(cfg.crop_px or short, short)
    crop -= crop % cfg.multiple_px
    if crop < 2 * cfg.multiple_px:
        raise UserError(f"--crop {cfg.crop_px} on a {shape[0]}x{shape[1]} working frame leaves {crop} px; need at "
                        f"least {2 * cfg.multiple_px}")
    return source, shape, crop


def evaluation_split(good: Path) -> Path | None:
    """``PRODUCT/test`` when ``good`` is an MVTec-layout product whose test split holds at least one defect
    folder (so an evaluation can say something about recall), else None."""
    test = good / "test"
    if good.name == "good" or not test.is_dir():
        return None
    return test if any(d.is_dir() and d.name != "good" for d in test.iterdir()) else None


def train(good: Path, out: Path, cfg: TrainConfig = TrainConfig(), product: str | None = None,
          feedback: Path | None = None, calibration: Path | None = None) -> dict:
    """Train teacher and student from the good images under ``good`` (plus QC's false rejects from
    ``feedback``); write the student to ``out`` and the teacher to ``out/teacher``.  Returns a summary
    dict (also in the model card; the feedback part in ``out/feedback.json``, the evaluation in
    ``out/evaluation.json``).

    ``calibration``: a folder of more good images, used only to place the thresholds, beside the held-back
    ones (never trained on).  With 80 held-back images a 1% false-reject target is a guess at the tail;
    every image added narrows it (docs/inspection.md, "Calibration across seven seeds").  Raises UserError
    when it holds no image."""
    t_start = time.perf_counter()
    folder = good_folder(good)
    product = product or _product_of(folder)
    fb: Feedback | None = read_feedback(feedback, product) if feedback is not None else None
    paths = list_images(folder) + (fb.good if fb else [])
    if len(paths) < cfg.min_holdout + 8:
        raise UserError(f"{folder} holds {len(paths)} images; need at least {cfg.min_holdout + 8} good images")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    source, shape, crop = _frame(paths, cfg)
    images = load_images(paths, shape)
    defects = load_images([p for p, _ in fb.defects], shape) if fb and fb.defects else None
    extra = _calibration_images(calibration, shape) if calibration is not None else None
    order = rng.permutation(len(images))
    n_hold = max(cfg.min_holdout, int(round(cfg.holdout_fraction * len(images))))
    hold, fit = images[order[:n_hold]], images[order[n_hold:]]
    mean = fit.reshape(-1, 3).mean(axis=0).tolist()
    std = (fit.reshape(-1, 3).std(axis=0) + 1e-3).tolist()
    logger.info("training %s: %d good images (first %dx%d, working frame %dx%d, %d px crops), %d held back for "
                "calibration", product, len(images), *source, *shape, crop, n_hold)
    if extra is not None:
        logger.info("calibrating on %d more good images from %s (never trained on)", len(extra), calibration)
    calibration_set = hold if extra is None else np.concatenate([hold, extra])

    t0 = time.perf_counter()
    teacher = TeacherNet(list(cfg.teacher_widths), mean, std)
    t_losses = _fit(teacher, cfg.teacher_steps, cfg.teacher_lr, f"teacher {product}", lambda x, m: m, fit, rng, cfg,
                    crop)
    t_teacher = time.perf_counter() - t0

    for p in teacher.parameters():
        p.requires_grad_(False)

    def distil_target(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = torch.sigmoid(teacher(x))
        return (soft + cfg.gt_weight * m) / (1 + cfg.gt_weight)

    t0 = time.perf_counter()
    student = StudentNet(list(cfg.student_widths), mean, std)
    s_losses = _fit(student, cfg.student_steps, cfg.student_lr, f"student {product}", distil_target, fit, rng, cfg,
                    crop)
    t_student = time.perf_counter() - t0
    for net in (teacher, student):  # after distillation: the student learnt the teacher's raw logits
        fit_normaliser(net, fit, edge_rings=cfg.edge_rings)

    size_px = [int(shape[0]), int(shape[1])]
    trade_off = TRADE_OFF.format(crop=crop, w=shape[0], h=shape[1], sw=source[0], sh=source[1],
                                 ratio=max(source) / max(shape), fit=len(fit), hold=n_hold)
    summary = {"product": product, "images": len(images), "holdout": n_hold,
               "calibration_extra": 0 if extra is None else len(extra), "size_px": size_px,
               "source_size_px": list(source), "crop_px": crop, "trade_off": trade_off,
               "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}
    folders = {}
    for role, net, losses, secs, arch in (("teacher", teacher, t_losses, t_teacher, "inspection-teacher"),
                                          ("student", student, s_losses, t_student, "inspection-student")):
        good_scores = score_batch(net, calibration_set, cfg.smooth_px)
        cal = calibrate(good_scores, cfg.target_frr, cfg.calibration_confidence, seed=cfg.seed)
        card = modelcard.ModelCard(
            role=role, product=product, threshold=cal.threshold, smooth_px=cfg.smooth_px, size_px=size_px,
            target_frr=cfg.target_frr, holdout_scores=[float(s) for s in good_scores],
            train_seconds=round(secs, 1), final_loss=round(float(np.mean(losses[-20:])), 4),
            parameters=count_parameters(net), steps=len(losses), source_size_px=list(source), crop_px=crop,
            trade_off=trade_off, calibration=modelcard.CalibrationInfo(
                method=cal.method, confidence=cal.confidence, images=cal.images, empirical=cal.empirical,
                fitted=cal.fitted))
        target = out if role == "student" else out / "teacher"
        modelcard.save(net, target, arch, {"widths": list(net.widths), "mean": mean, "std": std,
                                                    "norm_hw": net.norm_hw}, card,
                       calibration=hold[: min(32, len(hold))])
        folders[role] = target
        summary[role] = {"threshold": cal.threshold, "threshold_empirical": cal.empirical,
                         "train_seconds": round(secs, 1), "parameters": card.parameters,
                         "final_loss": card.final_loss}
        if defects is not None:
            defect_scores = score_batch(net, defects, cfg.smooth_px)
            summary[role]["feedback_defects_flagged"] = int((defect_scores >= cal.threshold).sum())
            summary[role]["feedback_defect_scores"] = [round(float(v), 5) for v in defect_scores]
        logger.info("%s %s: %d params, %.0f s, loss %.3f, threshold %.4f (%s; empirical %.4f, held-back good max "
                    "%.4f)", product, role, card.parameters, secs, card.final_loss, cal.threshold, cal.method,
                    cal.empirical, float(good_scores.max()))
    if fb is not None:
        summary["feedback"] = {**fb.report(), **{role: {k: v for k, v in summary[role].items()
                                                       if k.startswith("feedback_")}
                                                for role in ("teacher", "student")}}
        (out / "feedback.json").write_text(json.dumps(summary["feedback"], indent=2) + "\n")
    summary["train_seconds"] = round(time.perf_counter() - t_start, 1)
    test = evaluation_split(good) if cfg.evaluate else None
    if test is not None:
        from npusuite.inspection.evaluate import evaluate_folders

        report = evaluate_folders([folders["student"], folders["teacher"]], test, out, progress=cfg.progress)
        summary["evaluation"] = {m.role: m.mean.model_dump() for m in report.models}
        for role in ("student", "teacher"):
            modelcard.attach_evaluation(folders[role], report.for_role(role).mean)
    return summary
