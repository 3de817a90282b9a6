"""Per-pixel normalisation of the nets' logits (issue 16): buffers that survive save/load and define the output."""

from pathlib import Path

import numpy as np
import torch

from npusuite.inspection.modelcard import CalibrationInfo, ModelCard, load, save
from npusuite.inspection.nets import NORM_OFFSET, StudentNet
from npusuite.inspection.train import fit_normaliser


def _card() -> ModelCard:
    return ModelCard(role="student", product="p", threshold=0.5, smooth_px=3, size_px=[16, 8], target_frr=0.01,
                     holdout_scores=[0.1], train_seconds=1.0, final_loss=0.1, parameters=1, steps=1,
                     calibration=CalibrationInfo(method="m", confidence=0.75, images=1, empirical=0.5, fitted=0.5))


def test_good_frames_come_out_as_z_scores_per_pixel_and_the_buffers_reload(tmp_path: Path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    good = rng.uniform(0.3, 0.7, (40, 8, 16, 3)).astype(np.float32)
    net = StudentNet([4, 8]).eval()
    with torch.inference_mode():
        raw = net(torch.from_numpy(good).permute(0, 3, 1, 2))
    fit_normaliser(net, good)
    assert net.norm_hw == [8, 16]
    with torch.inference_mode():
        z = net(torch.from_numpy(good).permute(0, 3, 1, 2)) + NORM_OFFSET
    # on the frames it was fitted on, each pixel has mean 0 and standard deviation 1
    assert torch.allclose(z.mean(0), torch.zeros_like(z[0]), atol=1e-4)
    assert torch.allclose(z.std(0), torch.ones_like(z[0]), atol=1e-3)
    # the normalisation is not the identity: the raw logits differ from the normalised ones
    assert not torch.allclose(raw, z - NORM_OFFSET, atol=1e-2)
    save(net, tmp_path / "m", "inspection-student", {"widths": [4, 8], "norm_hw": net.norm_hw}, _card())
    loaded = load(tmp_path / "m").net
    x = torch.from_numpy(good[:3]).permute(0, 3, 1, 2)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)
