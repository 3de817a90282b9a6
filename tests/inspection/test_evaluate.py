"""inspection evaluate: metrics on constructed inputs, the report on a trained model, hostile splits."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from npusuite.inspection.evaluate import at_threshold, evaluate_folders, image_auroc, load_split, pixel_auroc, pro
from npusuite.platform.errors import UserError


def test_pixel_auroc_and_pro_are_one_for_a_perfect_heatmap_and_low_for_an_inverted_one():
    masks = np.zeros((3, 32, 32), bool)
    masks[0, 4:10, 4:10] = True
    masks[1, 20:22, 3:30] = True  # a thin scratch
    perfect = masks.astype(np.float32) * 0.9 + 0.05
    assert pixel_auroc(perfect, masks) == pytest.approx(1.0)
    assert pro(perfect, masks) == pytest.approx(1.0, abs=1e-3)
    inverted = 1.0 - perfect
    assert pixel_auroc(inverted, masks) == pytest.approx(0.0)
    assert pro(inverted, masks) < 0.01


def test_pro_weighs_regions_equally_unlike_pixel_auroc():
    """A big region found and a small one missed: pixel AUROC stays high, PRO halves."""
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 0:30, 0:30] = True   # 900 px, found
    masks[0, 50:52, 50:52] = True  # 4 px, missed
    heat = np.where(masks, 0.0, 0.1).astype(np.float32)
    heat[0, 0:30, 0:30] = 0.95
    assert pixel_auroc(heat, masks) > 0.99
    assert pro(heat, masks) == pytest.approx(0.5, abs=0.02)


def test_image_metrics_at_the_threshold():
    good, defect = np.array([0.1, 0.2, 0.6]), np.array([0.5, 0.7, 0.9, 0.3])
    assert image_auroc(good, defect) == pytest.approx(10 / 12)
    recall, precision, f1 = at_threshold(good, defect, 0.5)
    assert recall == 0.75 and precision == 0.75 and f1 == pytest.approx(0.75)


def test_a_split_without_good_images_is_refused(tmp_path: Path):
    (tmp_path / "test" / "crack").mkdir(parents=True)
    with pytest.raises(UserError, match="test/good"):
        load_split(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        load_split(tmp_path / "nope")


def test_evaluate_reports_both_nets_per_defect_type_and_skips_unreadable_files(tiny_model: Path, small_data: Path,
                                                                              tmp_path: Path):
    import shutil

    data = tmp_path / "washer"
    shutil.copytree(small_data / "washer", data)
    (data / "test" / "dent" / "zz-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = evaluate_folders([tiny_model, tiny_model / "teacher"], data, tmp_path / "eval", progress=False)
    assert [m.role for m in report.models] == ["student", "teacher"]
    assert [s.image for s in report.skipped] == ["dent/zz-corrupt.png"]
    written = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert written["models"][0]["role"] == "student"
    png = cv2.imread(str(tmp_path / "eval" / "evaluation.png"))
    assert png is not None and png.shape[1] > 800
    kinds = sorted(d.name for d in (data / "test").iterdir() if d.name != "good")
    for m in report.models:
        assert sorted(m.per_defect) == kinds
        for k in m.per_defect.values():
            assert 0.0 <= k.image_auroc <= 1.0 and k.pixel_auroc is not None and 0.0 <= k.pro <= 1.0
        assert m.mean.image_auroc == pytest.approx(np.mean([k.image_auroc for k in m.per_defect.values()]))
        assert m.good_images == len(list((data / "test" / "good").glob("*.png")))
        # realised FRR is the share of good test images at or above the card's threshold
        assert m.realised_frr * m.good_images == pytest.approx(round(m.realised_frr * m.good_images))
