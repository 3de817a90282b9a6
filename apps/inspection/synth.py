"""DRAEM-style anomaly synthesis on good images, for training without defects.

Rules:

* :func:`synthesize` takes one good image (float32 HxWx3 in [0, 1]) and
  returns ``(image, mask)``: with probability ``1 - p_anomaly`` the image
  unchanged and an all-zero mask, otherwise the image with one or two
  synthetic anomalies and the float32 mask (1 = anomalous) of the pixels they
  changed.
* Anomaly kinds (:data:`KINDS`):
  ``texture``: a noise-shaped mask (thresholded multi-octave smooth noise,
  as DRAEM's Perlin masks) filled with a foreign procedural texture, blended
  with a random opacity; ``colour``: a noise-shaped mask filled with a foreign
  flat colour; ``shade``: the image's own content darkened or brightened
  (x0.3-0.75 or x1.3-1.7) under a soft noise-shaped mask (stains, dents,
  burns); ``structure``: a noise-shaped mask filled with the image's own
  content, shuffled in blocks and rotated (DRAEM's structure augmentation);
  ``scratch``: thin random curves, dark or bright; ``spot``: small soft blobs;
  ``cutpaste``: a patch of the same image pasted elsewhere.
* No real defect data and no downloaded texture set: every foreign texture is
  drawn here.  Only pixels that changed by more than ``min_change`` are in
  the mask, so the net is never taught to flag an invisible anomaly.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("texture", "colour", "shade", "structure", "scratch", "spot", "cutpaste")


def noise_mask(rng: np.random.Generator, size: int, threshold: float | None = None) -> np.ndarray:
    """A binary blob mask shaped by thresholded multi-octave smooth noise (float32 0/1)."""
    noise = np.zeros((size, size), np.float32)
    res = int(rng.choice([2, 4, 8]))
    amp = 1.0
    for _ in range(3):
        grid = rng.normal(size=(res + 1, res + 1)).astype(np.float32)
        noise += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        res *= 2
        amp *= 0.5
    angle = rng.uniform(-90, 90)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    noise = cv2.warpAffine(noise, m, (size, size), borderMode=cv2.BORDER_REFLECT)
    t = threshold if threshold is not None else rng.uniform(0.9, 1.6) * noise.std()
    mask = (noise > t).astype(np.float32)
    if mask.sum() < 6:  # too small to matter: take the top few percent of the noise instead
        mask = (noise >= np.quantile(noise, 0.97)).astype(np.float32)
    return mask


def foreign_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A procedural texture unlike any product (stripes, checks, noise, gradients) in random colours."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = rng.integers(0, 4)
    if kind == 0:
        f, a = rng.uniform(0.3, 1.5), rng.uniform(0, np.pi)
        v = 0.5 + 0.5 * np.sin(f * (xx * np.cos(a) + yy * np.sin(a)))
    elif kind == 1:
        p = int(rng.integers(2, 8))
        v = ((xx // p + yy // p) % 2).astype(np.float32)
    elif kind == 2:
        v = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), rng.uniform(0.5, 2.5))
        v = (v - v.min()) / (np.ptp(v) + 1e-6)
    else:
        v = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / size
        v = (v - v.min()) / (np.ptp(v) + 1e-6)
    c1, c2 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    return c1[None, None, :] * v[..., None] + c2[None, None, :] * (1 - v[..., None])


def _structure(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = img.shape[0]
    block = size // int(rng.choice([4, 8]))
    blocks = [img[y:y + block, x:x + block] for y in range(0, size, block) for x in range(0, size, block)]
    order = rng.permutation(len(blocks))
    per_row = size // block
    rows = [np.concatenate([blocks[order[r * per_row + c]] for c in range(per_row)], axis=1) for r in range(per_row)]
    out = np.concatenate(rows, axis=0)
    return np.ascontiguousarray(np.rot90(out, int(rng.integers(1, 4))))


def _one(img: np.ndarray, rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    if kind == "shade":
        mask = noise_mask(rng, size)
        soft = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.5, 1.5))[..., None]
        factor = rng.uniform(0.3, 0.75) if rng.random() < 0.7 else rng.uniform(1.3, 1.7)
        return img * (1 - soft) + np.clip(img * factor, 0, 1) * soft, mask
    if kind in ("texture", "colour", "structure"):
        mask = noise_mask(rng, size)
        if kind == "texture":
            fill = foreign_texture(rng, size)
        elif kind == "colour":
            fill = np.broadcast_to(rng.random(3).astype(np.float32), img.shape)
        else:
            fill = _structure(img, rng)
        beta = rng.uniform(0.0, 0.6)  # opacity of the original, as DRAEM's beta
        soft = mask[..., None]
        out = img * (1 - soft) + (beta * img + (1 - beta) * fill) * soft
        return out, mask
    mask = np.zeros((size, size), np.float32)
    if kind == "scratch":
        for _ in range(int(rng.integers(1, 3))):
            pts = [rng.uniform(0, size, 2)]
            angle = rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(2, 6))):
                angle += rng.normal(0, 0.6)
                pts.append(pts[-1] + rng.uniform(size * 0.04, size * 0.15) * np.array([np.cos(angle), np.sin(angle)]))
            cv2.polylines(mask, [np.round(np.array(pts)).astype(np.int32)], False, 1.0, int(rng.integers(1, 3)))
        color = rng.choice([rng.uniform(0, 0.25), rng.uniform(0.75, 1.0)])
        fill = np.full(img.shape, color, np.float32) * rng.uniform(0.7, 1.0, 3).astype(np.float32)
    elif kind == "spot":
        for _ in range(int(rng.integers(1, 4))):
            c = tuple(int(v) for v in rng.uniform(0, size, 2))
            cv2.circle(mask, c, int(rng.integers(1, max(2, size // 12))), 1.0, -1)
        fill = np.broadcast_to(rng.random(3).astype(np.float32), img.shape)
    else:  # cutpaste
        h, w = (int(v) for v in rng.uniform(size * 0.08, size * 0.3, 2))
        sy, sx = (int(rng.integers(0, size - d)) for d in (h, w))
        dy, dx = (int(rng.integers(0, size - d)) for d in (h, w))
        patch = img[sy:sy + h, sx:sx + w]
        if rng.random() < 0.5:
            patch = np.ascontiguousarray(np.rot90(patch, 2))
        fill = img.copy()
        fill[dy:dy + h, dx:dx + w] = patch * rng.uniform(0.8, 1.2)
        mask[dy:dy + h, dx:dx + w] = 1.0
    alpha = rng.uniform(0.6, 1.0)
    soft = mask[..., None] * alpha
    return img * (1 - soft) + fill * soft, mask


def synthesize(img: np.ndarray, rng: np.random.Generator, p_anomaly: float = 0.5,
               min_change: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """One training example from one good image; see the module rules."""
    if rng.random() >= p_anomaly:
        return img, np.zeros(img.shape[:2], np.float32)
    out = img
    for _ in range(1 if rng.random() < 0.7 else 2):
        out, _ = _one(out, rng, str(rng.choice(KINDS)))
    out = np.clip(out, 0, 1).astype(np.float32)
    mask = (np.abs(out - img).max(axis=2) > min_change).astype(np.float32)
    return out, mask
