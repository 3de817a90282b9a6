"""Per-pixel normalisation of the nets' logits (issue 16): buffers that survive save/load and define the output."""

from pathlib import Path

import numpy as np
import torch

from npusuite.inspection.modelcard import CalibrationInfo, ModelCard, load, save
from npusuite.inspection.nets import NORM_OFFSET, StudentNet
from npusuite.inspection.train import edge_ring_factors, fit_normaliser


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
    fit_normaliser(net, good, edge_rings=False)
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


def test_edge_rings_widen_the_normaliser_only_where_good_tails_are_heavier():
    """A frame whose two outer rings have a heavy good tail (every 100th value large) and a Gaussian inside:
    the factors are > 1 on those rings, about 1 inside, and dividing by them brings the rings' 0.999 quantile
    to the interior's."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 40, 48)).astype(np.float32)
    edge = np.zeros((40, 48), bool)
    edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = True, True, True, True
    spikes = rng.random(z.shape) < 0.01
    z[:, edge] += np.where(spikes[:, edge], 4.0, 0.0)
    f = edge_ring_factors(z)
    assert f.shape == (40, 48) and f.dtype == np.float32
    assert (f[edge] > 1.3).all() and (f[~edge] < 1.1).all() and f.min() == 1.0
    q_edge = np.quantile((z / f)[:, edge], 0.999)
    q_inner = np.quantile(z[:, 16:24, 16:32], 0.999)
    assert abs(q_edge - q_inner) < 0.25 * q_inner
    # nothing to correct: a frame alike everywhere keeps (almost) all factors at 1, never below
    flat = edge_ring_factors(rng.normal(size=(200, 40, 48)))
    assert flat.min() == 1.0 and flat.max() < 1.15
    assert (edge_ring_factors(np.zeros((5, 8, 8))) == 1.0).all()  # degenerate: left alone


def test_fit_normaliser_applies_the_edge_factors_to_the_stored_deviation():
    torch.manual_seed(0)
    good = np.random.default_rng(1).uniform(0.3, 0.7, (30, 16, 16, 3)).astype(np.float32)
    plain, ringed = StudentNet([4, 8]).eval(), StudentNet([4, 8]).eval()
    ringed.load_state_dict(plain.state_dict())
    fit_normaliser(plain, good, edge_rings=False)
    fit_normaliser(ringed, good)
    assert torch.equal(plain.pix_mean, ringed.pix_mean)
    ratio = (ringed.pix_std / plain.pix_std)[0, 0]
    assert (ratio >= 1 - 1e-6).all()
    with torch.inference_mode():
        z = (plain(torch.from_numpy(good).permute(0, 3, 1, 2)) + NORM_OFFSET)[:, 0].numpy()
    assert np.allclose(ratio.numpy(), edge_ring_factors(z), atol=1e-5)
