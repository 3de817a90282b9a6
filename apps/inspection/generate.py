"""Synthetic products for inspection, in the MVTec AD layout (score lines: docs/contracts.md).

Rules:

* Three products, each with its own look and nuisance variation:
  ``fabric`` (a stochastic woven texture), ``tile`` (a regular printed grid
  pattern) and ``washer`` (a discrete part: a ring with an orientation notch
  on a dark background).  Nuisance: global lighting gain and a lighting
  gradient, a small pose shift (translation, and rotation for the patterned
  and discrete products), and Gaussian sensor noise.
* Defect kinds per product (:data:`DEFECTS`), drawn from
  :class:`~npusuite.platform.contracts.labels.DefectKind` (the vocabulary the
  review app's QC form offers); each defective image has a
  binary mask ``ground_truth/<kind>/<name>_mask.png`` (255 = defect) that
  covers exactly the pixels the defect changed noticeably.
* Defects here are drawn by *different* code from the training-time anomaly
  synthesiser (:mod:`npusuite.inspection.synth`), so a model that scores well
  here generalises to defect kinds it never saw.
* A held-out product, ``leather`` (:data:`HELDOUT_DEFECTS`: grained hide with
  pores; defects ``fold``, ``glue``, ``poke``, ``cut`` drawn by their own code,
  not in the QC vocabulary), exists for acceptance checks on a product and
  defect kinds nothing was developed against; it is generated only when asked
  for by name (``--products leather``), never by default.
* ``defects`` chooses a subset of a product's kinds.
* Output is deterministic for a given ``seed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from npusuite.platform.contracts.labels import DefectKind as D

logger = logging.getLogger(__name__)

PRODUCTS = ("fabric", "tile", "washer")
DEFECTS: dict[str, tuple[D, ...]] = {
    "fabric": (D.STAIN, D.SCRATCH, D.HOLE, D.THREAD),
    "tile": (D.CRACK, D.MISPRINT, D.STAIN, D.CHIP),
    "washer": (D.SCRATCH, D.DENT, D.MISSING, D.CONTAMINATION),
}

#: Held out from development: only acceptance tests and benchmarks generate these (with their own seeds).
HELDOUT_DEFECTS: dict[str, tuple[str, ...]] = {"leather": ("fold", "glue", "poke", "cut")}


def defect_kinds(product: str) -> tuple[str, ...]:
    """The defect kinds of any product, default or held out.  Raises ValueError for an unknown product."""
    if product in DEFECTS:
        return tuple(str(k) for k in DEFECTS[product])
    if product in HELDOUT_DEFECTS:
        return HELDOUT_DEFECTS[product]
    raise ValueError(f"unknown product {product}")


@dataclass(frozen=True)
class GenerateConfig:
    size_px: int = 64
    train_good: int = 300
    test_good: int = 100
    test_per_defect: int = 15
    seed: int = 0


# -- clean products --------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    noise = rng.normal(size=(size, size)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), scale_px)
    return noise / (noise.std() + 1e-6)


def _fabric(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 2)
    weave = np.sin(xx * 1.3 + phase[0]) * np.sin(yy * 1.3 + phase[1])
    grain = 2.0 * np.tanh(_smooth_noise(rng, size, 1.2) / 2.0)  # bounded: good cloth has no blotches
    v = 0.55 + 0.12 * weave + 0.08 * grain
    base = np.array([0.35, 0.45, 0.75], np.float32)  # BGR: a warm brown cloth
    return np.clip(v[..., None] * base[None, None, :] * 1.4, 0, 1)


def _tile(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size, 3), (0.85, 0.85, 0.82), np.float32)
    period = size // 4
    for gy in range(-1, 5):
        for gx in range(-1, 5):
            cx, cy = gx * period + period // 2, gy * period + period // 2
            cv2.circle(img, (cx, cy), period // 4, (0.55, 0.3, 0.15), -1, cv2.LINE_AA)
    for k in range(-1, 6):
        cv2.line(img, (k * period, 0), (k * period, size), (0.4, 0.4, 0.4), 1, cv2.LINE_AA)
        cv2.line(img, (0, k * period), (size, k * period), (0.4, 0.4, 0.4), 1, cv2.LINE_AA)
    return img


def _washer(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 0.12, np.float32)
    c = size // 2
    r_out, r_in = int(size * 0.36), int(size * 0.16)
    cv2.circle(img, (c, c), r_out, (0.72, 0.72, 0.70), -1, cv2.LINE_AA)
    cv2.circle(img, (c, c), r_in, (0.12, 0.12, 0.12), -1, cv2.LINE_AA)
    cv2.rectangle(img, (c - 2, c - r_out - 1), (c + 2, c - r_out + 4), (0.12, 0.12, 0.12), -1)  # orientation notch
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    sheen = 0.06 * np.cos((xx - yy) / size * np.pi)
    ring = (img[..., 0] > 0.3)[..., None]
    return np.where(ring, np.clip(img + sheen[..., None], 0, 1), img)


def _leather(rng: np.random.Generator, size: int) -> np.ndarray:
    grain = 0.05 * np.tanh(_smooth_noise(rng, size, size * 0.01)) + 0.05 * _smooth_noise(rng, size, size * 0.05)
    v = 0.62 + grain
    base = np.array([0.42, 0.58, 0.80], np.float32)  # BGR: tan hide
    img = np.clip(v[..., None] * base[None, None, :], 0, 1).astype(np.float32)
    pore_r = max(1, size // 200)
    for _ in range(size * size // 500):  # pores: part of good leather
        c = tuple(int(v) for v in rng.uniform(0, size, 2))
        cv2.circle(img, c, pore_r, tuple(float(x) for x in base * rng.uniform(0.45, 0.55)), -1, cv2.LINE_AA)
    return img


_DRAW = {"fabric": _fabric, "tile": _tile, "washer": _washer, "leather": _leather}


def _pose(img: np.ndarray, rng: np.random.Generator, product: str) -> np.ndarray:
    size = img.shape[0]
    angle = rng.uniform(-3, 3) if product != "fabric" else 0.0
    dx, dy = rng.uniform(-2, 2, 2)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _nuisance(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + rng.uniform(0, 0.12) * ((xx - 0.5) * np.cos(direction) + (yy - 0.5) * np.sin(direction))
    gain = rng.uniform(0.85, 1.15)
    out = img * gain * gradient[..., None]
    out = out + rng.normal(0, rng.uniform(0.005, 0.015), out.shape)
    return np.clip(out, 0, 1)


# -- defects ---------------------------------------------------------------------------------------
def _blob_mask(rng: np.random.Generator, size: int, r_min: float, r_max: float,
               region: np.ndarray | None) -> np.ndarray:
    for _ in range(50):
        cx, cy = rng.uniform(size * 0.15, size * 0.85, 2)
        if region is None or region[int(cy), int(cx)]:
            break
    mask = np.zeros((size, size), np.float32)
    pts = []
    n = 9
    r = rng.uniform(r_min, r_max)
    for k in range(n):
        a = 2 * np.pi * k / n
        rr = r * rng.uniform(0.6, 1.3)
        pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
    cv2.fillPoly(mask, [np.round(np.array(pts)).astype(np.int32)], 1.0, cv2.LINE_AA)
    if region is not None:
        mask *= region
    return mask


def _polyline(rng: np.random.Generator, size: int, length: float, jag: float, region: np.ndarray | None,
              thickness: int) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    for _ in range(50):
        x, y = rng.uniform(size * 0.2, size * 0.8, 2)
        if region is None or region[int(y), int(x)]:
            break
    angle = rng.uniform(0, np.pi)
    pts = [(x, y)]
    steps = 6
    for _ in range(steps):
        angle += rng.normal(0, jag)
        x += np.cos(angle) * length / steps
        y += np.sin(angle) * length / steps
        pts.append((x, y))
    cv2.polylines(mask, [np.round(np.array(pts)).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA)
    if region is not None:
        mask *= region
    return mask


def _apply_defect(clean: np.ndarray, kind: str, product: str,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (image with the defect, soft mask of the defect) on a clean float image in [0, 1]."""
    size = clean.shape[0]
    region = (clean.mean(axis=2) > 0.3).astype(np.float32) if product == "washer" else None
    img = clean.copy()
    if kind in ("stain", "contamination"):
        m = _blob_mask(rng, size, size * 0.05, size * 0.10, region)
        m = cv2.GaussianBlur(m, (0, 0), 0.8) * (region if region is not None else 1)
        if kind == "stain":
            color = clean.mean(axis=(0, 1)) * rng.uniform(0.3, 0.5)
        else:
            color = np.array(rng.choice([(0.1, 0.6, 0.2), (0.7, 0.2, 0.6), (0.1, 0.3, 0.8)]), np.float32)
        alpha = rng.uniform(0.75, 0.95)
        img = img * (1 - alpha * m[..., None]) + color[None, None, :] * alpha * m[..., None]
    elif kind in ("scratch", "thread", "crack"):
        if kind == "crack":
            m = _polyline(rng, size, size * rng.uniform(0.25, 0.45), 0.7, region, 1)
            color = np.zeros(3, np.float32) + 0.08
        elif kind == "thread":
            m = _polyline(rng, size, size * rng.uniform(0.3, 0.5), 0.25, region, int(rng.integers(1, 3)))
            color = np.array(rng.choice([(0.9, 0.9, 0.9), (0.2, 0.2, 0.7)]), np.float32)
        else:
            m = _polyline(rng, size, size * rng.uniform(0.25, 0.45), 0.08, region, int(rng.integers(1, 3)))
            color = np.zeros(3, np.float32) + (0.3 if product == "washer" else 0.15)  # a dark groove
        alpha = rng.uniform(0.85, 1.0)
        img = img * (1 - alpha * m[..., None]) + color[None, None, :] * alpha * m[..., None]
    elif kind in ("hole", "missing", "chip"):
        m = _blob_mask(rng, size, size * 0.05, size * 0.09, None)
        if kind == "missing":  # a bite out of the ring: place the blob on the ring's edge
            ring = region if region is not None else np.ones((size, size), np.float32)
            a = rng.uniform(0, 2 * np.pi)
            c, r = size / 2, size * 0.36
            m = np.zeros((size, size), np.float32)
            centre = (int(c + r * np.cos(a)), int(c + r * np.sin(a)))
            cv2.circle(m, centre, int(rng.uniform(0.09, 0.13) * size), 1.0, -1)
            m *= ring
            color = np.zeros(3, np.float32) + 0.12
        elif kind == "hole":
            color = np.zeros(3, np.float32) + 0.05
        else:  # chip: the glaze flakes off to the bare body
            color = np.array((0.65, 0.72, 0.78), np.float32)
        img = img * (1 - m[..., None]) + color[None, None, :] * m[..., None]
    elif kind == "misprint":  # one pattern dot shifted / smeared
        m = _blob_mask(rng, size, size * 0.06, size * 0.1, None)
        shifted = np.roll(clean, (int(rng.integers(3, 7)), int(rng.integers(3, 7))), axis=(0, 1))
        img = img * (1 - m[..., None]) + shifted * m[..., None]
    elif kind == "dent":
        m = _blob_mask(rng, size, size * 0.05, size * 0.09, region)
        m = cv2.GaussianBlur(m, (0, 0), 1.0) * (region if region is not None else 1)
        img = img * (1 - 0.55 * m[..., None])
    elif product in HELDOUT_DEFECTS:
        img = _heldout_defect(clean, kind, rng)
    else:
        raise ValueError(f"unknown defect kind {kind}")
    changed = np.abs(img - clean).max(axis=2) > 0.04
    return np.clip(img, 0, 1), changed.astype(np.uint8)


def _heldout_defect(clean: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The held-out product's defects; this code is used by nothing else."""
    size = clean.shape[0]
    img = clean.copy()
    if kind == "fold":  # a long soft crease: a dark band beside a light one
        m = _polyline(rng, size, size * rng.uniform(0.4, 0.7), 0.15, None, max(2, size // 64))
        m = cv2.GaussianBlur(m, (0, 0), size / 160)
        shift = max(1, size // 100)
        light = np.roll(m, shift, axis=1)
        img = img * (1 - 0.45 * m[..., None]) + 0.3 * light[..., None] * (1 - img)
    elif kind == "glue":  # a glossy, slightly yellow smear
        m = cv2.GaussianBlur(_blob_mask(rng, size, size * 0.04, size * 0.08, None), (0, 0), size / 128)
        gloss = np.array((0.72, 0.88, 0.92), np.float32)
        alpha = rng.uniform(0.55, 0.8)
        img = img * (1 - alpha * m[..., None]) + gloss[None, None, :] * alpha * m[..., None]
    elif kind == "poke":  # a punched hole with a pale, torn rim
        c = tuple(int(v) for v in rng.uniform(size * 0.15, size * 0.85, 2))
        r = int(rng.uniform(0.02, 0.035) * size) + 1
        rim = np.zeros((size, size), np.float32)
        cv2.circle(rim, c, r + max(1, size // 128), 1.0, -1, cv2.LINE_AA)
        hole = np.zeros((size, size), np.float32)
        cv2.circle(hole, c, r, 1.0, -1, cv2.LINE_AA)
        img = img * (1 - rim[..., None]) + np.clip(clean * 1.35, 0, 1) * rim[..., None]
        img = img * (1 - hole[..., None]) + 0.06 * hole[..., None]
    elif kind == "cut":  # a straight knife cut
        m = _polyline(rng, size, size * rng.uniform(0.15, 0.3), 0.02, None, max(1, size // 128))
        img = img * (1 - 0.9 * m[..., None]) + 0.1 * 0.9 * m[..., None]
    else:
        raise ValueError(f"unknown defect kind {kind} for a held-out product")
    return img


def make_good(product: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One defect-free image of ``product`` (float32 HxWx3 in [0, 1], BGR), before nuisance."""
    return _pose(_DRAW[product](rng, size), rng, product)


def _write(path: Path, img01: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.round(np.clip(img01, 0, 1) * 255).astype(np.uint8))


def generate(out: Path, config: GenerateConfig = GenerateConfig(), products: tuple[str, ...] = PRODUCTS,
             defects: tuple[str, ...] | None = None) -> dict:
    """Write the dataset under ``out``; returns counts per product and folder.  ``defects``: only these kinds
    (of the products that have them).  Raises ValueError for an unknown product or a defect kind no chosen
    product has."""
    counts: dict[str, dict[str, int]] = {}
    kinds_of = {p: defect_kinds(p) for p in products}
    if defects is not None:
        unknown = set(defects) - {k for ks in kinds_of.values() for k in ks}
        if unknown:
            raise ValueError(f"unknown defect kind(s) {sorted(unknown)} for {', '.join(products)}; choose from "
                             f"{', '.join(sorted({k for ks in kinds_of.values() for k in ks}))}")
    for p_index, product in enumerate(products):
        rng = np.random.default_rng([config.seed, p_index] if product in DEFECTS else [config.seed, 1000 + p_index])
        root = out / product
        counts[product] = {}
        jobs = [("train/good", None, config.train_good), ("test/good", None, config.test_good)]
        jobs += [(f"test/{kind}", kind, config.test_per_defect) for kind in kinds_of[product]
                 if defects is None or kind in defects]
        total = sum(n for *_, n in jobs)
        with tqdm(total=total, desc=f"generate {product}", unit="img", leave=False) as bar:
            for folder, kind, n in jobs:
                for i in range(n):
                    clean = make_good(product, rng, config.size_px)
                    name = f"{i:03d}"
                    if kind is None:
                        _write(root / folder / f"{name}.png", _nuisance(clean, rng))
                    else:
                        for _ in range(20):  # a defect that changed nothing (e.g. clipped away) is redrawn
                            img, mask = _apply_defect(clean, kind, product, rng)
                            if mask.sum() >= 4:
                                break
                        _write(root / folder / f"{name}.png", _nuisance(img, rng))
                        mask_path = root / "ground_truth" / kind / f"{name}_mask.png"
                        mask_path.parent.mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(mask_path), mask * 255)
                    bar.update(1)
                counts[product][folder] = n
        logger.info("generated %s under %s: %s", product, root, counts[product])
    return counts
