"""Heatmap overlays (score --save-heatmaps): source resolution, colour bar, score."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from npusuite.inspection.heatmaps import MIN_CANVAS_PX, overlay, render


def test_render_keeps_the_source_pixels_and_adds_a_colour_bar_and_header():
    image = np.full((300, 400, 3), 100, np.uint8)
    heat = np.zeros((300, 400), np.float32)
    heat[100:150, 200:260] = 0.9
    out = render(image, heat, 0.9, 0.5)
    assert out.shape[0] == 300 + 22 and out.shape[1] > 400
    body = out[22:, :400]
    assert body.shape == image.shape
    # the hot region is red-dominant (JET near 1), the cold one blue-dominant, and outlined in white
    hot, cold = body[120, 230].astype(int), body[20, 20].astype(int)
    assert hot[2] > hot[0] and cold[0] > cold[2]
    assert (body[100:150, 200:260] == 255).all(axis=2).any()
    # the colour bar: red at the top, blue at the bottom
    bar = out[22:, 400:416]
    assert bar[2, 8, 2] > bar[2, 8, 0] and bar[-3, 8, 0] > bar[-3, 8, 2]


def test_small_images_get_a_legible_canvas_and_mismatched_heatmaps_are_refused():
    out = render(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.float32), 0.1, 0.5)
    assert out.shape[1] == MIN_CANVAS_PX
    with pytest.raises(ValueError, match="does not match"):
        overlay(np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16), np.float32))


def test_score_saves_one_overlay_per_image_at_its_own_resolution(tiny_model: Path, small_data: Path, tmp_path: Path):
    from npusuite.platform.cli import main

    images = tmp_path / "imgs"
    (images / "sub").mkdir(parents=True)
    src = sorted((small_data / "washer" / "test" / "good").glob("*.png"))[:2]
    big = cv2.resize(cv2.imread(str(src[0])), (150, 100))  # another size and aspect than the model's
    cv2.imwrite(str(images / "big.png"), big)
    cv2.imwrite(str(images / "sub" / "small.jpg"), cv2.imread(str(src[1])))
    with pytest.raises(SystemExit) as exit_:
        main(["inspection", "score", "--model", str(tiny_model), "--images", str(images), "--out",
              str(tmp_path / "s.jsonl"), "--save-heatmaps", str(tmp_path / "heat")])
    assert exit_.value.code == 0
    a, b = cv2.imread(str(tmp_path / "heat" / "big.png")), cv2.imread(str(tmp_path / "heat" / "sub" / "small.png"))
    assert a.shape[0] == 100 + 22 and a.shape[1] >= 150
    assert b.shape[0] == 64 + 22
