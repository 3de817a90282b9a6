"""Categorical risk (npusuite.fraud.categorical): time-safe in training, a frozen table in the model."""

from __future__ import annotations

import numpy as np
import torch

from npusuite.fraud import categorical as cat
from npusuite.fraud.fast_model import FastModel, FraudMLP, save_fast_model
from npusuite.fraud.features import FEATURE_NAMES

DAY = 86400.0
COLUMNS = [FEATURE_NAMES.index(n) for n in cat.KEY_FEATURES]
SIZES = [cat.SPECS[f].buckets for f in cat.FIELDS]


def _stream(n: int = 400, risky_every: int = 4):
    """One row per hour; mcc key 7 is fraud every ``risky_every`` rows, mcc key 3 never."""
    keys = np.zeros((n, len(cat.FIELDS)))
    keys[:, 0] = np.where(np.arange(n) % 2 == 0, 7, 3)
    keys[:, 2] = 1
    y = (keys[:, 0] == 7) & (np.arange(n) % (2 * risky_every) == 0)
    t = np.arange(n) * 3600.0
    return keys, y, t


def test_keys_are_stable_and_none_is_zero():
    a = cat.category_keys("5411", "GB", "ecommerce", "M000001", None)
    assert a == cat.category_keys("5411", "GB", "ecommerce", "M000001", None)
    assert a[4] == 0.0 and all(k >= 1 for k in a[:4])
    assert cat.category_keys("5732", "GB", "ecommerce", "M000001", None)[0] != a[0]
    assert all(k < cat.SPECS[f].buckets for k, f in zip(a, cat.FIELDS, strict=True))


def test_time_safe_risk_uses_only_labels_known_before_each_row():
    keys, y, t = _stream()
    config = cat.RiskConfig(label_delay_s=DAY)
    risk = cat.time_safe_risk(keys, y, t, config)
    assert (risk[t <= DAY + 1e-9] == 0).all()  # nothing is known in the first day
    later = t > 5 * DAY
    assert (risk[later & (keys[:, 0] == 7), 0] > 0.3).all() and (risk[later & (keys[:, 0] == 3), 0] < 0).all()
    # The future cannot move the past: flipping the labels of the last day changes no earlier row.
    flipped = y.copy()
    last_day = t >= t[-1] - DAY
    flipped[last_day] = ~flipped[last_day]
    again = cat.time_safe_risk(keys, flipped, t, config)
    assert np.array_equal(again[~last_day], risk[~last_day])
    assert not np.array_equal(again, cat.time_safe_risk(keys, y, t, cat.RiskConfig(label_delay_s=0.0)))


def test_table_names_values_and_keeps_unknown_at_zero():
    keys, y, t = _stream()
    raw = {"mcc": ["5944" if k == 7 else "5411" for k in keys[:, 0]], "country": ["GB"] * len(y),
           "channel": ["ecommerce"] * len(y), "merchant": ["M1"] * len(y), "device": [None] * len(y)}
    fitted = cat.fit_table(keys, y, raw)
    block = fitted.table[cat.OFFSETS[0]:cat.OFFSETS[0] + cat.SPECS["mcc"].buckets]
    assert block[7] > 0 > block[3] and block[123] == 0.0
    named = {row["value"]: row for row in fitted.card["fields"]["mcc"]["values"]}
    assert named["5944"]["fraud"] == int(y.sum()) and named["5944"]["risk"] > 0 and named["5411"]["fraud"] == 0
    # Merchant reputation needs min_count transactions: 5 are too few to carry any.
    few = cat.fit_table(keys[:5], y[:5])
    assert few.card["fields"]["merchant"]["values_with_risk"] == 0


def test_the_model_looks_keys_up_in_its_table_and_keeps_it_when_saved(tmp_path):
    module = FraudMLP(len(FEATURE_NAMES), 8, risk_columns=COLUMNS, risk_sizes=SIZES)
    table = np.zeros(cat.TABLE_SIZE, dtype=np.float32)
    table[cat.OFFSETS[0] + 7] = 2.5
    table[cat.OFFSETS[3] + 11] = -1.5
    module.risk.copy_(torch.from_numpy(table))
    x = np.random.default_rng(0).normal(size=(3, len(FEATURE_NAMES))).astype(np.float32)
    x[:, COLUMNS] = [[7, 1, 1, 11, 0], [3, 1, 1, 11, 0], [7, 1, 1, 9, 0]]
    encoded = module.encode(torch.from_numpy(x)).numpy()
    assert encoded[:, COLUMNS[0]].tolist() == [2.5, 0.0, 2.5] and encoded[:, COLUMNS[3]].tolist() == [-1.5, -1.5, 0.0]
    others = [i for i in range(len(FEATURE_NAMES)) if i not in COLUMNS]
    assert np.array_equal(encoded[:, others], x[:, others])
    save_fast_model(module, tmp_path / "m", {"features": list(FEATURE_NAMES)})
    loaded = FastModel.load(tmp_path / "m").module
    assert torch.equal(loaded.risk, module.risk)
    assert np.array_equal(loaded.encode(torch.from_numpy(x)).numpy(), encoded)


def _keys_scrambled(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, COLUMNS] = np.random.default_rng(3).integers(1, 4000, (len(x), len(COLUMNS)))
    return out


def test_without_learned_risk_the_keys_never_reach_the_network(fraud_model):
    """`fraud train`'s default: the card says so, and no hash bucket moves a score."""
    model = FastModel.load(fraud_model[0] / "fast")
    assert model.card["categorical_risk"] == {"enabled": False}
    assert model.module.risk.numel() == len(COLUMNS) and not model.module.risk.any()
    x = np.random.default_rng(0).normal(size=(64, len(FEATURE_NAMES))).astype(np.float32)
    x[:, COLUMNS] = 1.0
    assert np.array_equal(model.predict(x), model.predict(_keys_scrambled(x)))


def test_with_learned_risk_the_card_has_the_table_and_keys_matter(fraud_data, tmp_path):
    from npusuite.fraud.fast_model import FastTrainConfig
    from npusuite.fraud.training import TrainConfig, load_dataset, train

    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    card = train(ds, tmp_path / "m", TrainConfig(fast=FastTrainConfig(epochs=1), with_llm=False,
                                                 categorical_risk=True), progress=False)
    assert card["categorical_risk"]["enabled"] is True and set(card["categorical_risk"]["fields"]) == set(cat.FIELDS)
    model = FastModel.load(tmp_path / "m" / "fast")
    assert model.module.risk.numel() == cat.TABLE_SIZE and model.module.risk.any()
    assert not np.array_equal(model.predict(ds.x), model.predict(_keys_scrambled(ds.x)))
