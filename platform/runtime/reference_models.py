"""Small reference architectures the platform ships for its tests, benchmarks and demo.

- ``platform-scale``: ``y = x * factor`` (one parameter), so two versions give
  visibly different answers; used to prove hot swap switches versions.
- ``platform-noop``: returns its input; used to measure HTTP overhead alone.
- ``platform-sleep``: returns its input after ``delay_ms``; a slow model to fill queues.
- ``platform-fail``: raises an exception no handler knows whenever an input is
  negative (the server must answer a generic JSON 500 and keep serving).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from npusuite.platform.runtime.modules import register_architecture, save_module

SPEC_IN = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
SPEC_OUT = [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]


@register_architecture("platform-scale")
class Scale(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.factor = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


@register_architecture("platform-noop")
class NoOp(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register_architecture("platform-sleep")
class Sleep(nn.Module):
    def __init__(self, width: int = 4, delay_ms: float = 200.0):
        super().__init__()
        self.delay_ms = delay_ms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay_ms / 1000)
        return x


@register_architecture("platform-fail")
class Fail(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x < 0).any():
            raise KeyError("internal detail: negative input reached a lookup")
        return x


def save_fail(out_dir, width: int = 4):
    return save_module(Fail(width), out_dir, "platform-fail", {"width": width}, inputs=SPEC_IN, outputs=SPEC_OUT)


def save_sleep(out_dir, delay_ms: float, width: int = 4):
    return save_module(Sleep(width, delay_ms), out_dir, "platform-sleep", {"width": width, "delay_ms": delay_ms},
                       inputs=SPEC_IN, outputs=SPEC_OUT)


def save_scale(out_dir, factor: float, width: int = 4):
    module = Scale(width)
    with torch.no_grad():
        module.factor.fill_(factor)
    return save_module(module, out_dir, "platform-scale", {"width": width}, inputs=SPEC_IN, outputs=SPEC_OUT)


def save_noop(out_dir, width: int = 4):
    return save_module(NoOp(width), out_dir, "platform-noop", {"width": width}, inputs=SPEC_IN, outputs=SPEC_OUT)
