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
    novelty, groups, _, _, _ = model.score(np.zeros((3, N_FEATURES), dtype=np.float32))
    assert np.isfinite(novelty).all() and groups.shape[0] == 3


def test_train_novelty_with_sequence_serves_what_the_offline_path_computes(capsys, tmp_path, fraud_data):
    """`--sequence`: the saved model reloads with its GRU and calibration; given the previous rows a live account
    state keeps, it scores what the offline index computes, and refuses to score without them."""
    from npusuite.fraud.features import HISTORY_ROWS, StreamFeaturizer, history_block
    from npusuite.fraud.novelty import NoveltyModel
    from npusuite.fraud.novelty_sequence import offline_history, sequence_error
    from npusuite.fraud.training import load_dataset

    code, out, err = _run(capsys, "--data", str(fraud_data.transactions), "--labels", str(fraud_data.labels),
                          "--out", str(tmp_path / "nov"), "--epochs", "1", "--trees", "20", "--sequence",
                          "--sequence-epochs", "1", "--sequence-hidden", "16")
    assert code == 0, err
    model = NoveltyModel.load(tmp_path / "nov")
    assert model.card["detector"] == "isolation-forest+sequence" and model.history == HISTORY_ROWS
    assert model.card["sequence"]["epochs"] == 1 and model.card["sequence"]["hidden"] == 16
    assert model.module.sequence.rnn.hidden_size == 16 and model.module.sequence.calibration.numel() > 100
    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    rows = np.arange(len(ds.y) - 400, len(ds.y))
    with pytest.raises(ValueError, match="no history given"):
        model.score(ds.x[rows])
    history = offline_history(ds.transactions, ds.x, rows)
    # The live states' history is the offline index's.
    featuriser, wanted, before = StreamFeaturizer(), set(rows.tolist()), []
    for i, tx in enumerate(ds.transactions):
        if i in wanted:
            state = featuriser.states.get(tx.account_id)
            before.append(state.history if state else b"")
        featuriser.advance(tx)
    live = history_block(before)
    assert np.array_equal(live[0], history[0]) and np.array_equal(live[1], history[1])
    scores = model.score(ds.x[rows], live)
    assert np.allclose(scores.sequence.error, sequence_error(model.module.sequence, ds.transactions, ds.x, rows),
                       rtol=1e-5, atol=1e-7)
    assert np.array_equal(scores.novelty, np.maximum(scores.forest, scores.sequence.evidence))
    assert (scores.sequence.evidence >= 0).all() and (scores.sequence.evidence > 0).any()
    # A restored history may hold any float32 (NaN, infinities): the novelty stays finite.
    poisoned_rows = live[0].copy()
    poisoned_rows[:, -1, :3] = [np.nan, np.inf, -np.inf]
    poisoned = model.score(ds.x[rows], (poisoned_rows, live[1]))
    assert np.isfinite(poisoned.novelty).all() and np.isfinite(poisoned.sequence.error).all()


@pytest.mark.parametrize("args, message", [
    (["--trees", "-1"], "--trees must be between 0 and 1000"),
    (["--trees", "5000"], "--trees must be between 0 and 1000"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--sequence-epochs", "2"], "--sequence-epochs and --sequence-hidden need --sequence"),
    (["--sequence-hidden", "64"], "--sequence-epochs and --sequence-hidden need --sequence"),
    (["--sequence", "--sequence-hidden", "2"], "--sequence-hidden must be between 4 and 512"),
    (["--sequence", "--sequence-epochs", "0"], "--sequence-epochs must be between 1 and 100"),
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
            novelty = lease.app.score(x[:5]).novelty
            assert np.isfinite(novelty).all() and (novelty > 0).all()
        with pytest.raises(SwapError, match="calibration quantile"):
            engine.load("3")
        assert engine.ref == "fraud-novelty@2"
    finally:
        engine.close()


def test_the_novelty_engine_hot_swaps_to_a_sequence_model_and_refuses_one_without_its_calibration(tmp_path,
                                                                                                   fraud_data):
    from npusuite.fraud.features import FEATURE_NAMES, HISTORY_ROWS, HISTORY_WIDTH
    from npusuite.fraud.novelty import NoveltyTrainConfig, save_novelty_model, train_novelty
    from npusuite.fraud.novelty_sequence import SequenceTrainConfig
    from npusuite.fraud.service.novelty_adapter import FraudNoveltyAdapter
    from npusuite.fraud.training import load_dataset
    from npusuite.platform.engine import ModelEngine
    from npusuite.platform.engine.errors import SwapError
    from npusuite.platform.repository import ModelRepository

    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    repo = ModelRepository(tmp_path / "models")
    for i, sequence in enumerate((None, SequenceTrainConfig(history=4, hidden=8, epochs=1),
                                  SequenceTrainConfig(history=4, hidden=8, epochs=1),
                                  SequenceTrainConfig(history=HISTORY_ROWS + 1, hidden=8, epochs=1)), start=1):
        config = NoveltyTrainConfig(epochs=1, hidden=8, bottleneck=2, trees=10, tree_rows=128, sequence=sequence)
        module, info = train_novelty(ds.x, ds.y, config, transactions=ds.transactions)
        card = {"ref": f"fraud-novelty@{i}", "features": list(FEATURE_NAMES), **info}
        if i == 3:
            card["calibration"].pop("forest_quantiles")
        save_novelty_model(module, tmp_path / f"v{i}", card)
        repo.add("fraud-novelty", tmp_path / f"v{i}")
    engine = ModelEngine.open("fraud-novelty", root=repo.root, follow_alias=False, adapter=FraudNoveltyAdapter())
    try:
        assert engine._current().app.history == 0
        engine.load("2")
        with engine.lease() as lease:
            assert lease.app.history == 4
            rows = np.zeros((3, HISTORY_ROWS, HISTORY_WIDTH), np.float32)
            present = np.zeros((3, HISTORY_ROWS), bool)
            present[1, -1] = present[2, :] = True
            rows[present] = ds.x[:int(present.sum()), :HISTORY_WIDTH]
            scores = lease.app.score(ds.x[:3], (rows, present))
            assert np.isfinite(scores.novelty).all() and scores.sequence.previous.tolist() == [0, 1, 4]
        with pytest.raises(SwapError, match="without its calibration"):
            engine.load("3")
        with pytest.raises(SwapError, match=f"reads {HISTORY_ROWS + 1} previous transactions"):
            engine.load("4")
        assert engine.ref == "fraud-novelty@2"
    finally:
        engine.close()
