"""The inspection segmentation networks, registered with the platform's torch-module registry.

Rules:

* Both nets take a float32 batch ``N x 3 x H x W`` of BGR pixels in [0, 1]
  (H and W divisible by ``2 ** (len(widths) - 1)``), normalise it with the
  per-channel ``mean``/``std`` of the product's good images (part of the
  config, so a saved model carries its own normalisation), and return one
  anomaly *logit* per pixel, ``N x 1 x H x W``.  ``sigmoid`` of it is the
  heatmap.
* After training, :meth:`_UNet.set_normaliser` stores the per-pixel mean and
  standard deviation of the net's raw logits over the training good images
  (whole working frames) as buffers; from then on the output is the
  per-pixel z-score minus :data:`NORM_OFFSET` (a good pixel sits near
  ``sigmoid(-5)``), so a pixel is anomalous relative to what that position
  does on good parts (borders, recurrent texture), not on an absolute scale.
  ``norm_hw`` in the config sizes the buffers, so a saved model reloads with
  them, and the ONNX export carries them as constants (same graph as torch).
  A normalised net only takes frames of the working size.
* ``inspection-teacher``: a U-Net with two 3x3 conv-BN-ReLU per level, trained
  from scratch on synthesised anomalies (no pretrained weights anywhere).
* ``inspection-student``: a U-Net with one conv-BN-ReLU per level and a few
  channels, distilled from the teacher's logits.  It is built only from
  Conv2d/BatchNorm2d/ReLU/pooling/upsampling/concat, so it quantises to int8
  with PyTorch's FX static quantisation (:func:`quantize_int8`).
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from npusuite.platform.runtime.modules import register_architecture

logger = logging.getLogger(__name__)

#: the normalised logit is ``z - NORM_OFFSET``: z = 5 standard deviations above a good pixel is heat 0.5.
NORM_OFFSET = 5.0
#: the smallest per-pixel standard deviation the normaliser divides by.
MIN_STD = 1e-3


def _cbr(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class _UNet(nn.Module):
    convs_per_level = 1

    def __init__(self, widths: list[int], mean: list[float] | None = None, std: list[float] | None = None,
                 norm_hw: list[int] | None = None):
        super().__init__()
        self.widths = list(widths)
        self.norm_hw: list[int] | None = None
        if norm_hw is not None:
            self.set_normaliser(torch.zeros(*norm_hw), torch.ones(*norm_hw))
        self.register_buffer("mean", torch.tensor(mean or [0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std or [0.25, 0.25, 0.25]).view(1, 3, 1, 1))
        k = self.convs_per_level
        self.down = nn.ModuleList()
        c_prev = 3
        for w in self.widths:
            layers = _cbr(c_prev, w)
            for _ in range(k - 1):
                layers += _cbr(w, w)
            self.down.append(nn.Sequential(*layers))
            c_prev = w
        self.up = nn.ModuleList()
        for w_skip in reversed(self.widths[:-1]):
            layers = _cbr(c_prev + w_skip, w_skip)
            for _ in range(k - 1):
                layers += _cbr(w_skip, w_skip)
            self.up.append(nn.Sequential(*layers))
            c_prev = w_skip
        self.head = nn.Conv2d(c_prev, 1, 1)

    @property
    def multiple_px(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def set_normaliser(self, pix_mean: torch.Tensor, pix_std: torch.Tensor) -> None:
        """Per-pixel ``H x W`` mean and standard deviation of the raw logits on good frames (see module rules)."""
        if pix_mean.shape != pix_std.shape or pix_mean.dim() != 2:
            raise ValueError("pix_mean and pix_std must be H x W tensors of the same shape")
        self.norm_hw = [int(pix_mean.shape[0]), int(pix_mean.shape[1])]
        self.register_buffer("pix_mean", pix_mean.detach().float().reshape(1, 1, *self.norm_hw).clone())
        self.register_buffer("pix_std",
                             pix_std.detach().float().clamp_min(MIN_STD).reshape(1, 1, *self.norm_hw).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        out = self.head(x)
        if self.norm_hw is not None:
            out = (out - self.pix_mean) / self.pix_std - NORM_OFFSET
        return out


@register_architecture("inspection-teacher")
class TeacherNet(_UNet):
    convs_per_level = 2

    def __init__(self, widths: list[int] = (24, 48, 96), mean: list[float] | None = None,
                 std: list[float] | None = None, norm_hw: list[int] | None = None):
        super().__init__(list(widths), mean, std, norm_hw)


@register_architecture("inspection-student")
class StudentNet(_UNet):
    convs_per_level = 1

    def __init__(self, widths: list[int] = (8, 16, 32), mean: list[float] | None = None,
                 std: list[float] | None = None, norm_hw: list[int] | None = None):
        super().__init__(list(widths), mean, std, norm_hw)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def quantize_int8(module: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """Static int8 (x86/fbgemm) copy of a float net, calibrated on ``calibration`` (N x 3 x H x W good images).

    Weights and activations are int8; the input normalisation and the final
    logit stay float at the edges.  Raises RuntimeError when this PyTorch build
    has no quantised CPU engine.
    """
    import copy
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engines = torch.backends.quantized.supported_engines
    engine = "x86" if "x86" in engines else "fbgemm" if "fbgemm" in engines else None
    if engine is None:
        raise RuntimeError(f"no x86/fbgemm quantised engine in this torch build (have {engines})")
    torch.backends.quantized.engine = engine
    float_model = copy.deepcopy(module).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        prepared = prepare_fx(float_model, get_default_qconfig_mapping(engine), example_inputs=(calibration[:1],))
        with torch.inference_mode():
            for i in range(0, len(calibration), 8):
                prepared(calibration[i:i + 8])
        quantized = convert_fx(prepared)
    logger.info("quantised %s to int8 (%s engine, %d calibration images)", type(module).__name__, engine,
                len(calibration))
    return quantized.eval()
