"""``npusuite fraud train-novelty``: a forest-scored model with its card, loadable as served; bad options refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npusuite.platform.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["fraud", "train-novelty", *args])
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_train_novelty_writes_a_forest_model_that_loads_and_scores(capsys, tmp_path, fraud_data):
    from npusuite.fraud.features import N_FEATURES
    from npusuite.fraud.novelty import NoveltyModel

    code, out, err = _run(capsys, "--data", str(fraud_data.transactions), "--labels", str(fraud_data.labels),
                          "--out", str(tmp_path / "nov"), "--epochs", "1", "--trees", "20")
    assert code == 0, err
    result = json.loads(out)
    model = NoveltyModel.load(tmp_path / "nov")
    assert model.card["detector"] == "isolation-forest" and model.card["training"]["trees"] == 20
    assert model.module.forest is not None and model.module.forest.feature.shape[0] == 20
    quantiles = list(result["calibration"]["quantiles"].values())
    assert quantiles == sorted(quantiles) and 0 < quantiles[0] < quantiles[-1] <= 1  # an isolation score
    novelty, groups, _ = model.score(np.zeros((3, N_FEATURES), dtype=np.float32))
    assert np.isfinite(novelty).all() and groups.shape[0] == 3


@pytest.mark.parametrize("args, message", [
    (["--trees", "-1"], "--trees must be between 0 and 1000"),
    (["--trees", "5000"], "--trees must be between 0 and 1000"),
    (["--epochs", "0"], "--epochs must be positive"),
])
def test_bad_options_are_one_line_refusals(capsys, tmp_path, fraud_data, args, message):
    code, _, err = _run(capsys, "--data", str(fraud_data.transactions), "--labels", str(fraud_data.labels),
                        "--out", str(tmp_path / "nov"), *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "nov").exists()


def test_the_novelty_engine_hot_swaps_a_forest_model_and_refuses_a_broken_card(tmp_path):
    """Served through the platform engine: version 1 (autoencoder only, the models of before) is replaced by
    version 2 (with its forest); version 3, whose card lost its calibration, is refused and 2 keeps serving."""
    from npusuite.fraud.features import FEATURE_NAMES, N_FEATURES
    from npusuite.fraud.novelty import NoveltyTrainConfig, save_novelty_model, train_novelty
    from npusuite.fraud.service.novelty_adapter import FraudNoveltyAdapter
    from npusuite.platform.engine import ModelEngine
    from npusuite.platform.engine.errors import SwapError
    from npusuite.platform.repository import ModelRepository

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, N_FEATURES)).astype(np.float32)
    y = np.zeros(len(x), dtype=bool)
    repo = ModelRepository(tmp_path / "models")
    for i, trees in enumerate((0, 20, 20), start=1):
        module, info = train_novelty(x, y, NoveltyTrainConfig(epochs=1, hidden=8, bottleneck=2, trees=trees,
                                                              tree_rows=128))
        card = {"ref": f"fraud-novelty@{i}", "features": list(FEATURE_NAMES), **info}
        if i == 3:
            card.pop("calibration")
        save_novelty_model(module, tmp_path / f"v{i}", card)
        repo.add("fraud-novelty", tmp_path / f"v{i}")
    engine = ModelEngine.open("fraud-novelty", root=repo.root, follow_alias=False, adapter=FraudNoveltyAdapter())
    try:
        assert engine._current().app.module.forest is None
        engine.load("2")
        with engine.lease() as lease:
            assert lease.app.module.forest is not None and lease.app.card["detector"] == "isolation-forest"
            novelty, _, _ = lease.app.score(x[:5])
            assert np.isfinite(novelty).all() and (novelty > 0).all()
        with pytest.raises(SwapError, match="calibration quantile"):
            engine.load("3")
        assert engine.ref == "fraud-novelty@2"
    finally:
        engine.close()
