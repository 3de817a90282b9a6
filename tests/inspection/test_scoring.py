import numpy as np
import pytest

from npusuite.inspection.records import Frame, Inspection
from npusuite.inspection.scoring import boxes_from_heatmap, calibrate_threshold


def test_calibrated_threshold_rejects_at_most_the_target_share_of_good_images():
    rng = np.random.default_rng(0)
    scores = rng.random(300)
    for frr in (0.0, 0.01, 0.05, 0.2):
        t = calibrate_threshold(scores, frr)
        assert (scores >= t).mean() <= frr
        # and not needlessly high: lowering it to the next good score would exceed the target
        below = scores[scores < t].max()
        assert (scores >= below).mean() > frr


def test_calibration_refuses_empty_or_bad_targets():
    with pytest.raises(ValueError):
        calibrate_threshold([], 0.01)
    with pytest.raises(ValueError):
        calibrate_threshold([0.1], 1.0)


def test_boxes_are_connected_components_largest_first():
    heat = np.zeros((32, 32), np.float32)
    heat[2:4, 3:6] = 0.9          # 2x3
    heat[10:20, 10:14] = 0.8      # 10x4
    heat[30, 30] = 0.4            # below threshold
    boxes = boxes_from_heatmap(heat, 0.5)
    assert boxes == [(10, 10, 4, 10), (3, 2, 3, 2)]
    assert boxes_from_heatmap(heat, 0.95) == []


def test_frame_validates_its_image_and_inspection_json_follows_the_contract():
    with pytest.raises(ValueError):
        Frame(np.zeros((4, 4), np.uint8), 0.0, "x", 0)
    frame = Frame(np.zeros((8, 8, 3), np.uint8), 1772409676.966969, "cam", 5, name="good/000.png")
    ins = Inspection(frame, 0.7, 0.5, np.zeros((8, 8), np.float32), [(1, 2, 3, 4)], 1.5, "washer@2")
    line = ins.to_json()
    assert ins.defective and ins.verdict == "NG"
    assert {k: line[k] for k in ("image", "defective", "boxes", "model")} == {
        "image": "good/000.png", "defective": True, "boxes": [[1, 2, 3, 4]], "model": "washer@2"}
    assert line["timestamp"] == "2026-03-02T00:01:16.966969Z"
