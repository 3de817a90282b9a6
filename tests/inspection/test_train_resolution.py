"""Training at a working resolution: images of any size, aspect kept, crops, what the card records."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from npusuite.inspection.calibration import HELDBACK_TOLERANCE
from npusuite.inspection.images import working_shape
from npusuite.inspection.modelcard import read_card
from npusuite.inspection.scoring import calibrate_threshold
from npusuite.inspection.train import TrainConfig, train
from npusuite.platform.errors import UserError

TINY = dict(teacher_steps=3, student_steps=3, batch_size=2, teacher_widths=(8, 8, 8), progress=False)


def test_working_shape_keeps_the_aspect_ratio_and_never_upscales():
    assert working_shape(256, 256, 128, 4) == (128, 128)
    assert working_shape(400, 200, 128, 4) == (128, 64)
    assert working_shape(300, 170, 128, 4) == (128, 72)  # 72.5 rounded to a multiple of 4
    assert working_shape(64, 48, 128, 4) == (64, 48)
    with pytest.raises(UserError):
        working_shape(64, 64, 30, 4)


def test_images_of_different_sizes_train_on_one_working_frame(small_data: Path, tmp_path: Path):
    good = tmp_path / "good"
    good.mkdir()
    for i, p in enumerate(sorted((small_data / "washer" / "train" / "good").glob("*.png"))[:24]):
        img = cv2.imread(str(p))
        side = (192, 128) if i == 0 else (96 + 16 * (i % 3), 64 + 8 * (i % 2))  # the first sets the aspect
        cv2.imwrite(str(good / f"{i:02d}.png"), cv2.resize(img, side))
    summary = train(good, tmp_path / "m", TrainConfig(size_px=96, crop_px=32, **TINY))
    card = read_card(tmp_path / "m")
    assert card.size_px == [96, 64] and card.source_size_px == [192, 128] and card.crop_px == 32
    assert "32x32 px crops" in card.trade_off and summary["size_px"] == [96, 64]
    assert card.calibration is not None
    assert card.threshold >= calibrate_threshold(card.holdout_scores, HELDBACK_TOLERANCE * card.target_frr)
    assert card.evaluation is None  # a plain folder has no test split


def test_a_crop_the_frame_cannot_hold_is_refused(small_data: Path, tmp_path: Path):
    with pytest.raises(UserError, match="--crop"):
        train(small_data / "washer", tmp_path / "m", TrainConfig(size_px=8, crop_px=4, **TINY))


def test_the_nets_run_on_whole_frames_after_training_on_crops(small_data: Path, tmp_path: Path):
    from npusuite.inspection.modelcard import load

    train(small_data / "washer", tmp_path / "m", TrainConfig(crop_px=32, evaluate=False, **TINY))
    model = load(tmp_path / "m")
    import torch

    with torch.inference_mode():
        out = model.net(torch.rand(2, 3, *reversed(model.card.size_px)))
    assert tuple(out.shape) == (2, 1, model.card.size_px[1], model.card.size_px[0])
    assert np.isfinite(out.numpy()).all()


def test_a_calibration_folder_adds_good_images_to_the_thresholds_only(small_data: Path, tmp_path: Path):
    extra = small_data / "washer" / "test" / "good"
    n_extra = len(list(extra.glob("*.png")))
    summary = train(small_data / "washer", tmp_path / "m", TrainConfig(crop_px=32, evaluate=False, **TINY),
                    calibration=extra)
    card = read_card(tmp_path / "m")
    assert summary["calibration_extra"] == n_extra > 0
    assert len(card.holdout_scores) == card.calibration.images == summary["holdout"] + n_extra
    assert summary["images"] == 40  # trained on the training folder's images only
    assert card.threshold >= calibrate_threshold(card.holdout_scores, HELDBACK_TOLERANCE * card.target_frr)
