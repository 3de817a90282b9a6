"""Throughput of the served fraud tiers, as ratios in one run (``bench/fraud_quality.py --throughput``).

Issue 19 asks that the scorer with the novelty tier keeps at least 0.8 of today's throughput.  "Today" is the
scorer as ``fraud train`` trains it by default: the MLP fast model, no novelty tier.  Measured here, in one
process, on the same batches:

- ``mlp``: today's scorer (the MLP, no novelty tier);
- ``mlp + novelty``: the MLP with the novelty tier (isolation forest + autoencoder reasons);
- ``boosted``: the boosted fast model (``fraud train --learner gbm``) alone;
- ``boosted + novelty``: the boosted fast model with the novelty tier;
- ``mlp + sequence novelty`` and ``boosted + sequence novelty``: the same with the novelty model of
  ``fraud train-novelty --sequence`` (the forest and a GRU over each account's previous 8 feature rows, which
  the scorer gathers from the account states only for such a model).

Every variant's account states keep their last 8 feature rows (the sequence detector's input), so the
baseline pays that too; ``bench/fraud_hot_path.py`` measures the per-transaction cost of the features.

``TieredScorer.score_batch`` on 500-row batches (features, fast model with reasons, novelty, decisions), account
states warmed on the first two thirds, one torch thread, the variants interleaved in ``rounds`` rounds; the
figure per variant is the median of its rounds, wall-clock and this process's CPU time (which leaves out the time
it waited for a core on a shared machine).  Ratios are against ``mlp``.  Writes
``fraud_quality_throughput.json`` and ``.png``.
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from fraud_novelty import interleaved_rates

from npusuite.fraud.boosted_model import GbmTrainConfig, train_fast_gbm
from npusuite.fraud.fast_model import FastModel, FastTrainConfig, train_fast_model
from npusuite.fraud.features import FEATURE_NAMES, StreamFeaturizer
from npusuite.fraud.generator import GeneratorConfig, generate
from npusuite.fraud.novelty import NoveltyModel, NoveltyTrainConfig, train_novelty
from npusuite.fraud.novelty_rule import NoveltyConfig
from npusuite.fraud.novelty_sequence import SequenceTrainConfig
from npusuite.fraud.replay import warm_up
from npusuite.fraud.schema import Label, parse_transaction
from npusuite.fraud.scorer import ScorerConfig, TieredScorer
from npusuite.fraud.training import choose_thresholds

logger = logging.getLogger("bench.fraud_quality_speed")
BATCH = 500


def _fast(module, info: dict, ref: str) -> FastModel:
    card = {"features": list(FEATURE_NAMES), "thresholds": choose_thresholds(info["p_cal"], info["y_cal"], 0.01)}
    return FastModel(module, ref, card)


def run_throughput(gen_cfg: GeneratorConfig, rounds: int, out: Path) -> int:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows, label_rows = generate(gen_cfg, progress=False)
    txs = [parse_transaction(r) for r in rows]
    labels = {lab["transaction_id"]: Label.model_validate(lab) for lab in label_rows}
    until = gen_cfg.start + timedelta(days=gen_cfg.days * 2 / 3)
    train_txs = [tx for tx in txs if tx.timestamp < until]
    test_txs = txs[len(train_txs):]
    x = StreamFeaturizer().matrix(train_txs)
    y = np.array([labels[tx.transaction_id].is_fraud for tx in train_txs])
    mlp = _fast(*train_fast_model(x, y, FastTrainConfig(seed=gen_cfg.seed), progress=False), "fraud-fast@mlp")
    boosted = _fast(*train_fast_gbm(x, y, GbmTrainConfig(seed=gen_cfg.seed)), "fraud-fast@gbm")
    ae, card = train_novelty(x, y, NoveltyTrainConfig(seed=gen_cfg.seed))
    novelty = NoveltyModel(ae, "fraud-novelty@bench", card, NoveltyConfig.from_card(card))
    ae, card = train_novelty(x, y, NoveltyTrainConfig(seed=gen_cfg.seed, sequence=SequenceTrainConfig(
        seed=gen_cfg.seed)), transactions=train_txs)
    sequence = NoveltyModel(ae, "fraud-novelty@bench-sequence", card, NoveltyConfig.from_card(card))
    states: dict = {}
    warm_up(states, train_txs)
    batches = [[(tx, states.get(tx.account_id)) for tx in test_txs[i:i + BATCH]]
               for i in range(0, len(test_txs), BATCH)]
    variants = {"mlp": TieredScorer(mlp, None, ScorerConfig.from_card(mlp.card)),
                "mlp + novelty": TieredScorer(mlp, None, ScorerConfig.from_card(mlp.card), novelty=novelty),
                "boosted": TieredScorer(boosted, None, ScorerConfig.from_card(boosted.card)),
                "boosted + novelty": TieredScorer(boosted, None, ScorerConfig.from_card(boosted.card),
                                                  novelty=novelty),
                "mlp + sequence novelty": TieredScorer(mlp, None, ScorerConfig.from_card(mlp.card),
                                                       novelty=sequence),
                "boosted + sequence novelty": TieredScorer(boosted, None, ScorerConfig.from_card(boosted.card),
                                                           novelty=sequence)}
    for scorer in variants.values():  # compile the tree walks and warm caches outside the timed rounds
        scorer.score_batch(batches[0])
    n = sum(len(b) for b in batches)
    wall, cpu = interleaved_rates(variants, batches, rounds)
    med = {k: round(statistics.median(v), 1) for k, v in wall.items()}
    med_cpu = {k: round(statistics.median(v), 1) for k, v in cpu.items()}
    result = {"benchmark": "fraud_quality_throughput",
              "config": {"accounts": gen_cfg.accounts, "days": gen_cfg.days, "seed": gen_cfg.seed, "rounds": rounds,
                         "batch": BATCH, "transactions_per_round": n,
                         "boosted_trees": int(boosted.module.trees.feature.shape[0]),
                         "baseline": "mlp: the scorer as `fraud train` trains it by default, no novelty tier"},
              "tx_per_s_wall": med, "tx_per_s_cpu": med_cpu,
              "ratio_vs_mlp_wall": {k: round(v / med["mlp"], 3) for k, v in med.items()},
              "ratio_vs_mlp_cpu": {k: round(v / med_cpu["mlp"], 3) for k, v in med_cpu.items()},
              "rounds_wall": {k: [round(r, 1) for r in v] for k, v in wall.items()},
              "wall_s": round(time.perf_counter() - t0, 1),
              "machine": {"python": sys.version.split()[0], "platform": platform.platform()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fraud_quality_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(out / "fraud_quality_throughput.png", result)
    print(json.dumps({k: result[k] for k in ("tx_per_s_wall", "ratio_vs_mlp_wall", "ratio_vs_mlp_cpu")}, indent=2))
    return 0


def _plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["tx_per_s_wall"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.bar(range(len(names)), [result["tx_per_s_wall"][n] for n in names], color="C0", alpha=0.7)
    for i, n in enumerate(names):
        ax.plot([i] * len(result["rounds_wall"][n]), result["rounds_wall"][n], "k.", ms=4)
        ax.text(i, result["tx_per_s_wall"][n], f"x{result['ratio_vs_mlp_wall'][n]:.2f}", ha="center", va="bottom")
    ax.set_xticks(range(len(names)), [n.replace(" + ", "\n+ ") for n in names], fontsize=8)
    ax.set(ylabel="score_batch transactions/s (median; dots: rounds)",
           title="Served fraud tiers, 500-row batches; ratio against today's MLP scorer")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(run_throughput(GeneratorConfig(accounts=400, days=21, seed=42), 7, Path(__file__).parent / "out"))
