"""The inspection engine: one loaded model turning frames into :class:`Inspection` records.

Rules:

* An :class:`Inspector` wraps one :class:`~npusuite.inspection.modelcard.LoadedModel`
  (a model folder or a repository version, loaded through the platform) and is
  safe to call from one thread at a time; the live line serialises calls.
* Frames of any size are resized to the size the model was trained on; the
  score and the boxes are computed at model resolution by
  :mod:`npusuite.inspection.scoring` and boxes are scaled back to frame
  pixels; the returned heatmap has the frame's size.
* Two paths, the same policy: a torch net's logits go through
  :func:`~npusuite.inspection.scoring.heatmaps` and
  :func:`~npusuite.inspection.scoring.image_scores`; an ONNX graph exported
  with the fused scoring head (:func:`npusuite.inspection.export.add_heatmap_head`)
  returns ``heatmap`` and ``score`` itself and this path stays in numpy/OpenCV
  (no torch tensor per frame).  An ONNX graph without the head (an older
  export) takes the torch path through :class:`OnnxModule`'s torch calling
  convention.  ``inspection export`` checks that both give the same heatmaps
  and verdicts.
* ``latency_ms`` covers preprocessing, the forward pass and postprocessing of
  that frame (for a batch: the batch's time divided by its size).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npusuite.inspection.modelcard import LoadedModel, load
from npusuite.inspection.records import Frame, Inspection
from npusuite.inspection.scoring import boxes_from_heatmap, heatmaps, image_scores
from npusuite.platform.runtime.onnx_runtime import OnnxModule

#: outputs of the fused scoring head (npusuite.inspection.export.HEATMAP, SCORE)
_HEAD = ["heatmap", "score"]

logger = logging.getLogger(__name__)


class Inspector:
    """Inspects frames with one model.  Build with :meth:`load` or from a :class:`LoadedModel`."""

    def __init__(self, model: LoadedModel, min_box_area_px: int = 1) -> None:
        self.model = model
        self.min_box_area_px = min_box_area_px
        self.width_px, self.height_px = model.card.size_px
        net = model.net
        #: the ONNX graph computes heatmap and score itself: the numpy path
        self.fused = isinstance(net, OnnxModule) and net.has_outputs(*_HEAD)

    @classmethod
    def load(cls, ref: str | Path, root: Path | None = None, precision: str = "fp32", device: str = "cpu",
             threads: int = 0, **kwargs) -> Inspector:
        """Load ``ref`` (a folder or ``name[@version|@alias]`` in ``root``; a torch or an exported ONNX
        folder).  Raises UserError."""
        return cls(load(ref, root, precision=precision, device=device, threads=threads), **kwargs)

    @property
    def ref(self) -> str:
        return self.model.ref

    @property
    def threshold(self) -> float:
        return self.model.card.threshold

    def _pixels(self, frames: Sequence[Frame]) -> np.ndarray:
        """``N x H x W x 3`` uint8 at the model's size."""
        import cv2

        batch = []
        for f in frames:
            img = f.image
            if img.shape[:2] != (self.height_px, self.width_px):
                img = cv2.resize(img, (self.width_px, self.height_px), interpolation=cv2.INTER_AREA)
            batch.append(img)
        return np.stack(batch)

    def _array(self, frames: Sequence[Frame]) -> np.ndarray:
        """The net's input in numpy: ``N x 3 x H x W`` float32 in [0, 1] (same values as :meth:`_tensor`)."""
        x = np.ascontiguousarray(self._pixels(frames).transpose(0, 3, 1, 2), dtype=np.float32)
        x /= np.float32(255.0)
        return x

    def _tensor(self, frames: Sequence[Frame]):
        import torch

        x = torch.from_numpy(self._pixels(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        try:
            device = next(self.model.net.parameters()).device
        except (StopIteration, AttributeError):
            device = torch.device("cpu")
        return x.to(device)

    def inspect_batch(self, frames: Sequence[Frame]) -> list[Inspection]:
        """One forward pass for all ``frames``; one :class:`Inspection` each, in order."""
        import cv2

        if not frames:
            return []
        t0 = time.perf_counter()
        card = self.model.card
        if self.fused:
            heat_np, scores = self.model.net.outputs(self._array(frames), _HEAD)
        else:
            import torch

            with torch.inference_mode():
                heat = heatmaps(self.model.net(self._tensor(frames)).float().cpu(), card.smooth_px)
                scores = image_scores(heat).numpy()
            heat_np = heat.numpy()
        results = []
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        for i, frame in enumerate(frames):
            t1 = time.perf_counter()
            h, w = frame.image.shape[:2]
            sx, sy = w / self.width_px, h / self.height_px
            boxes = [(int(x * sx), int(y * sy), max(1, round(bw * sx)), max(1, round(bh * sy)))
                     for x, y, bw, bh in boxes_from_heatmap(heat_np[i], card.threshold, self.min_box_area_px)]
            full = heat_np[i] if (h, w) == heat_np[i].shape else cv2.resize(heat_np[i], (w, h))
            post_ms = (time.perf_counter() - t1) * 1000.0
            results.append(Inspection(frame=frame, score=float(scores[i]), threshold=card.threshold, heatmap=full,
                                      boxes=boxes, latency_ms=elapsed_ms / len(frames) + post_ms, model=self.ref,
                                      product=card.product))
        return results

    def inspect(self, frame: Frame) -> Inspection:
        return self.inspect_batch([frame])[0]


def heatmap_overlay(inspection: Inspection, alpha: float = 0.45) -> np.ndarray:
    """The frame with its heatmap (JET colour map) blended on top and the boxes drawn; BGR uint8."""
    import cv2

    heat = np.clip(inspection.heatmap * 255.0, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    out = cv2.addWeighted(inspection.frame.image, 1 - alpha, colour, alpha, 0)
    for x, y, w, h in inspection.boxes:
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (255, 255, 255), 1)
    return out
