"""Fraud-model fixtures: a small generated data set and one small trained model pair, per session.

Everything is made here from a seed (nothing downloaded): 250 accounts over
21 days (~13k transactions), a fast model with few epochs and an LLM verdict
model with a few dozen fine-tuning steps, so the whole fraud test set stays
within its time budget on a loaded 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class FraudData:
    folder: Path
    transactions: Path
    labels: Path


@pytest.fixture(scope="session")
def fraud_data(tmp_path_factory: pytest.TempPathFactory) -> FraudData:
    from npusuite.fraud.generator import GeneratorConfig, write

    out = tmp_path_factory.mktemp("fraud-data")
    write(out, GeneratorConfig(accounts=250, days=21, seed=11, fraud_rate=0.006), progress=False)
    return FraudData(out, out / "transactions.jsonl", out / "labels.jsonl")


@pytest.fixture(scope="session")
def fraud_model(fraud_data: FraudData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(MODEL_DIR, model root) trained in-process with small settings, published to a repository."""
    from npusuite.fraud.fast_model import FastTrainConfig
    from npusuite.fraud.llm_verdict import LlmTrainConfig
    from npusuite.fraud.training import TrainConfig, load_dataset, train

    base = tmp_path_factory.mktemp("fraud-model")
    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    config = TrainConfig(fast=FastTrainConfig(epochs=6), llm=LlmTrainConfig(steps=40, batch_size=16),
                         llm_examples=300)
    train(ds, base / "model", config, model_root=base / "repo", progress=False)
    return base / "model", base / "repo"
