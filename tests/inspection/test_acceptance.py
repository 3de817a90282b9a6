"""Issue 16 acceptance: a product, seed and defect kinds nothing was developed against, at 256 x 256 px.

Trains with the defaults (the training time is measured in bench/inspection_training.py, not here) and
asserts, for the student averaged over defect types, image AUROC >= 0.98 and recall >= 0.95 at the calibrated
threshold, and a realised false-reject rate on freshly generated good images (another seed) of at most 1.5x the
target.  Minutes of CPU: slow-marked.
"""

import json
import os
from pathlib import Path

import pytest

from npusuite.inspection.evaluate import evaluate_folders
from npusuite.inspection.generate import GenerateConfig, generate
from npusuite.inspection.modelcard import read_card
from npusuite.inspection.train import TrainConfig, train

# The product seed: 1616 was the first acceptance seed (it informed one calibration choice, see
# docs/inspection.md); 2911 is the fresh confirmation seed, never used in development.  Another unseen seed
# can be tried without editing this file: NPUSUITE_ACCEPTANCE_SEED=<n> (the fresh good parts use
# NPUSUITE_ACCEPTANCE_FRESH_SEED, default product seed + 4545).
SEED = int(os.environ.get("NPUSUITE_ACCEPTANCE_SEED", "2911"))
FRESH_SEED = int(os.environ.get("NPUSUITE_ACCEPTANCE_FRESH_SEED", str(SEED + 4545)))


@pytest.mark.slow
# Met since session 18 (2026-12-03): image AUROC 1.0000, recall 1.00, fresh FRR 0.2% on seed 2911 (it was xfail
# before: recall 0.87, fold 0.48).  What changed: the normaliser is widened near the frame edge, where good texture
# scored like a defect, and the threshold's bootstrap bound is at 90% (docs/inspection.md, "The frame edge").
# Across 11 study seeds 10 pass and 4 of 4 new ones (bench/inspection_calibration.py).
@pytest.mark.timeout(5400)  # about 6 CPU-minutes; a shared, oversubscribed 2-core machine stretches that many-fold
def test_defaults_detect_a_held_out_product_at_256_px_and_the_threshold_holds(tmp_path: Path):
    generate(tmp_path / "data", GenerateConfig(size_px=256, train_good=200, test_good=100, test_per_defect=25,
                                               seed=SEED), ("leather",))
    generate(tmp_path / "fresh", GenerateConfig(size_px=256, train_good=0, test_good=1000, test_per_defect=0,
                                                seed=FRESH_SEED), ("leather",), defects=())
    cfg = TrainConfig(progress=False)
    summary = train(tmp_path / "data" / "leather", tmp_path / "model", cfg)
    student = summary["evaluation"]["student"]
    fresh = evaluate_folders([tmp_path / "model"], tmp_path / "fresh" / "leather", progress=False).models[0]
    report = json.loads((tmp_path / "model" / "evaluation.json").read_text())
    per = {k: round(v["recall"], 2) for k, v in report["models"][0]["per_defect"].items()}
    card = read_card(tmp_path / "model")
    print(f"seed {SEED} (fresh {FRESH_SEED}) student: image AUROC {student['image_auroc']:.4f}, "
          f"recall {student['recall']:.4f} {per}; fresh FRR "
          f"{fresh.realised_frr:.4f} of {fresh.good_images} (target {cfg.target_frr}); threshold "
          f"{card.threshold:.4f} (empirical {card.calibration.empirical:.4f}, held-back max "
          f"{max(card.holdout_scores):.4f} of {len(card.holdout_scores)}); train {summary['train_seconds']} s")
    assert student["image_auroc"] >= 0.98
    assert student["recall"] >= 0.95
    assert fresh.good_images == 1000 and fresh.mean is None
    assert fresh.realised_frr <= 1.5 * cfg.target_frr
