"""``inspection evaluate``: how good a trained model is on an MVTec-layout test split.

Input: ``PRODUCT/`` or ``PRODUCT/test`` with ``test/good/*`` and
``test/<defect>/*`` images and, where present,
``ground_truth/<defect>/<name>_mask.png`` (non-zero = defect).

Rules:

* Every image goes through the same pixels and scoring as the live line:
  resized to the card's working frame with area interpolation
  (:func:`~npusuite.inspection.images.to_working`), the net, the smoothed
  heatmap and its maximum (:mod:`npusuite.inspection.scoring`).
* Per defect type, against all ``test/good`` images: image AUROC; recall,
  precision and F1 of "score >= the card's calibrated threshold"; and, where
  masks exist, pixel AUROC and PRO (mean per-region overlap integrated over
  pixel false-positive rates 0-30%, divided by 0.3, as in MVTec AD).  Pixel
  figures are computed at the working resolution (masks resized with area
  interpolation, >= 0.5 is defect) on a 16384-bin histogram of the heatmap
  values in [0, 1] (exact up to ties within a bin).
* The realised false-reject rate is the share of ``test/good`` images at or
  above the threshold, reported beside the card's target.
* The mean over defect types is the headline (each type weighs the same,
  whatever its image count).
* An image or mask that cannot be read is skipped and listed with its reason
  (``skipped``); the CLI then exits 2 after writing the report.

Output: an :class:`EvaluationReport` (``evaluation.json``) and a figure
(``evaluation.png``, :mod:`npusuite.inspection.evaluation_plot`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from tqdm import tqdm

from npusuite.inspection.images import ImageRefused, list_images, read_image, to_working
from npusuite.inspection.modelcard import EvaluationMetrics, LoadedModel
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

BINS = 16384
MAX_FPR = 0.3
REPORT = "evaluation.json"
FIGURE = "evaluation.png"


# -- records ---------------------------------------------------------------------------------------
class SkippedImage(BaseModel):
    image: str
    reason: str


class ModelEvaluation(BaseModel):
    ref: str
    role: str
    size_px: list[int]
    threshold: float
    target_frr: float
    realised_frr: float  # share of test/good at or above the threshold
    good_images: int
    per_defect: dict[str, EvaluationMetrics]
    mean: EvaluationMetrics | None  # None when the split has no defect folder
    #: what ran the net: "torch fp32", "torch int8", "onnxruntime fp32", "openvino bf16", ...
    runtime: str = "torch fp32"


class EvaluationReport(BaseModel):
    data: str
    pixel_metrics_at: str = "working resolution (the card's size_px)"
    models: list[ModelEvaluation]
    skipped: list[SkippedImage] = []

    def for_role(self, role: str) -> ModelEvaluation:
        return next(m for m in self.models if m.role == role)


# -- the test split --------------------------------------------------------------------------------
@dataclass
class TestSplit:
    """Source images (uint8 BGR, any sizes) with their kind and optional mask (bool, source size)."""

    root: Path
    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)

    @property
    def defect_kinds(self) -> list[str]:
        return sorted({k for k in self.kinds if k != "good"})


def _read_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    mask = read_image(path)[:, :, 0] > 0
    if mask.shape != shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def load_split(folder: Path) -> TestSplit:
    """Read ``PRODUCT/test`` (or ``folder`` itself when it is the test folder).  Raises UserError when there is
    no ``good`` folder or no image at all."""
    folder = Path(folder)
    test = folder / "test" if (folder / "test").is_dir() else folder
    if not test.is_dir():
        raise UserError(f"--data {folder}: no such folder")
    if not (test / "good").is_dir():
        raise UserError(f"--data {folder}: no test/good folder (MVTec layout: PRODUCT/test/good, "
                        f"PRODUCT/test/<defect>, PRODUCT/ground_truth/<defect>/<name>_mask.png)")
    truth = test.parent / "ground_truth"
    split = TestSplit(root=test)
    kinds = sorted(d.name for d in test.iterdir() if d.is_dir())
    paths = [(k, p) for k in kinds for p in list_images(test / k)]
    for kind, path in tqdm(paths, desc="read test split", unit="img", leave=False):
        name = str(path.relative_to(test))
        try:
            image = read_image(path)
            mask_path = truth / kind / f"{path.stem}_mask.png"
            mask = _read_mask(mask_path, image.shape) if kind != "good" and mask_path.is_file() else None
        except ImageRefused as exc:
            split.skipped.append(SkippedImage(image=name, reason=str(exc)))
            logger.warning("evaluate: skipping %s: %s", name, exc)
            continue
        split.names.append(name)
        split.kinds.append(kind)
        split.images.append(image)
        split.masks.append(mask)
    if "good" not in split.kinds:
        raise UserError(f"--data {folder}: test/good holds no readable image")
    return split


# -- metrics (pure) --------------------------------------------------------------------------------
def image_auroc(good: np.ndarray, defect: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(good)), np.ones(len(defect))]
    return float(roc_auc_score(y, np.r_[good, defect]))


def _bins(values: np.ndarray) -> np.ndarray:
    return np.clip((values.astype(np.float64) * BINS).astype(np.int64), 0, BINS - 1)


def _hist(values: np.ndarray) -> np.ndarray:
    return np.bincount(_bins(values), minlength=BINS).astype(np.float64)


def pixel_auroc(heat: np.ndarray, masks: np.ndarray) -> float:
    """AUROC of heatmap values (in [0, 1]) against boolean ``masks`` of the same shape (binned; ties count half)."""
    pos, neg = _hist(heat[masks]), _hist(heat[~masks])
    if not pos.sum() or not neg.sum():
        raise ValueError("pixel AUROC needs both defect and good pixels")
    neg_below = np.cumsum(neg) - neg  # good pixels in strictly lower bins
    return float((pos * (neg_below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def pro(heat: np.ndarray, masks: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Per-region overlap integrated over pixel FPR in [0, ``max_fpr``], normalised to [0, 1].

    ``heat``/``masks``: ``N x H x W``; regions are the 8-connected components of each mask; the FPR counts the
    pixels outside every mask.  Thresholds are the histogram's bin edges."""
    import cv2

    neg = _hist(heat[~masks])
    if not neg.sum() or not masks.any():
        raise ValueError("PRO needs both defect and good pixels")
    fpr = np.cumsum(neg[::-1])[::-1] / neg.sum()  # share of good pixels in bins >= edge k
    overlaps = []
    for h, m in zip(heat, masks, strict=True):
        if not m.any():
            continue
        n, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        for r in range(1, n):
            region = np.sort(_bins(h[labels == r]))
            overlaps.append(1.0 - np.searchsorted(region, np.arange(BINS), side="left") / region.size)
    per_edge = np.mean(overlaps, axis=0)
    # walk thresholds from high to low (fpr rising); integrate up to max_fpr with the last segment interpolated
    f, p = np.r_[0.0, fpr[::-1]], np.r_[0.0, per_edge[::-1]]
    keep = f <= max_fpr
    f_in, p_in = f[keep], p[keep]
    nxt = int(keep.sum())
    if nxt < f.size and f[nxt] > f_in[-1]:
        w = (max_fpr - f_in[-1]) / (f[nxt] - f_in[-1])
        f_in, p_in = np.r_[f_in, max_fpr], np.r_[p_in, p_in[-1] + w * (p[nxt] - p_in[-1])]
    return float(np.trapezoid(p_in, f_in) / max_fpr)




def at_threshold(good: np.ndarray, defect: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(recall, precision, F1) of ``score >= threshold`` on defect vs good image scores."""
    tp = float((defect >= threshold).sum())
    fp = float((good >= threshold).sum())
    recall = tp / len(defect) if len(defect) else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return recall, precision, f1


def _mean(per: dict[str, EvaluationMetrics]) -> EvaluationMetrics | None:
    if not per:
        return None
    vals = list(per.values())

    def avg(name: str) -> float | None:
        xs = [getattr(v, name) for v in vals if getattr(v, name) is not None]
        return float(np.mean(xs)) if xs else None

    return EvaluationMetrics(images=sum(v.images for v in vals), image_auroc=avg("image_auroc"),
                             pixel_auroc=avg("pixel_auroc"), pro=avg("pro"), recall=avg("recall"),
                             precision=avg("precision"), f1=avg("f1"))


# -- running a model -------------------------------------------------------------------------------
@dataclass
class Scored:
    """One model's heatmaps (working resolution) and scores on the split, for metrics and the figure."""

    model: LoadedModel
    heat: np.ndarray      # N x h x w float32
    scores: np.ndarray    # N
    masks: list[np.ndarray | None]  # at working resolution


def score_split(model: LoadedModel, split: TestSplit, batch: int = 32, progress: bool = True) -> Scored:
    import cv2
    import torch

    from npusuite.inspection.scoring import heatmaps, image_scores

    shape = (int(model.card.size_px[0]), int(model.card.size_px[1]))
    net = model.net
    heats, scores = [], []
    with torch.inference_mode(), tqdm(total=len(split.images), desc=f"evaluate {model.card.role}", unit="img",
                                      disable=not progress, leave=False) as bar:
        for i in range(0, len(split.images), batch):
            chunk = np.stack([to_working(img, shape) for img in split.images[i:i + batch]])
            x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div_(255.0)
            h = heatmaps(net(x).float().cpu(), model.card.smooth_px)
            heats.append(h.numpy())
            scores.append(image_scores(h).numpy())
            bar.update(len(chunk))
    masks = [None if m is None else cv2.resize(m.astype(np.float32), shape, interpolation=cv2.INTER_AREA) >= 0.5
             for m in split.masks]
    return Scored(model, np.concatenate(heats), np.concatenate(scores), masks)


def metrics(scored: Scored, split: TestSplit) -> ModelEvaluation:
    card = scored.model.card
    kinds = np.array(split.kinds)
    good = scored.scores[kinds == "good"]
    good_idx = np.flatnonzero(kinds == "good")
    per: dict[str, EvaluationMetrics] = {}
    for kind in split.defect_kinds:
        idx = np.flatnonzero(kinds == kind)
        defect = scored.scores[idx]
        recall, precision, f1 = at_threshold(good, defect, card.threshold)
        with_mask = [i for i in idx if scored.masks[i] is not None]
        p_auroc = p_pro = None
        if with_mask:
            sel = np.r_[with_mask, good_idx]
            heat = scored.heat[sel]
            masks = np.stack([scored.masks[i] if scored.masks[i] is not None else np.zeros(heat.shape[1:], bool)
                              for i in sel])
            if masks.any():
                p_auroc, p_pro = pixel_auroc(heat, masks), pro(heat, masks)
        per[kind] = EvaluationMetrics(images=int(idx.size), image_auroc=image_auroc(good, defect),
                                      pixel_auroc=p_auroc, pro=p_pro, recall=recall, precision=precision, f1=f1)
    net = scored.model.net
    runtime = f"{net.engine} {net.precision}" if hasattr(net, "engine") else f"torch {scored.model.precision}"
    return ModelEvaluation(ref=scored.model.ref, role=card.role, size_px=list(card.size_px),
                           threshold=card.threshold, target_frr=card.target_frr,
                           realised_frr=float((good >= card.threshold).mean()), good_images=int(good.size),
                           per_defect=per, mean=_mean(per), runtime=runtime)


def evaluate_models(models: list[LoadedModel], data: Path, out: Path | None = None,
                    progress: bool = True) -> EvaluationReport:
    """Evaluate each of ``models`` on the split at ``data``; with ``out``, write ``evaluation.json`` and
    ``evaluation.png`` there.  Raises UserError for a missing or empty split."""
    split = load_split(data)
    scored = [score_split(m, split, progress=progress) for m in models]
    report = EvaluationReport(data=str(split.root), models=[metrics(s, split) for s in scored],
                              skipped=split.skipped)
    for m in report.models:
        if m.mean is not None:
            logger.info("evaluate %s (%s): image AUROC %.3f, recall %.3f at threshold %.4f, FRR %.3f (target "
                        "%.3f) on %d good", m.ref, m.role, m.mean.image_auroc, m.mean.recall, m.threshold,
                        m.realised_frr, m.target_frr, m.good_images)
    if out is not None:
        from npusuite.inspection.evaluation_plot import plot_evaluation

        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT).write_text(report.model_dump_json(indent=2) + "\n")
        plot_evaluation(report, scored, split, out / FIGURE)
    return report


def evaluate_folders(folders: list[Path], data: Path, out: Path | None = None,
                     progress: bool = True) -> EvaluationReport:
    from npusuite.inspection.modelcard import load

    return evaluate_models([load(f) for f in folders], data, out, progress)
