"""Where the served novelty column loses left-out fraud: not seen by the novelty rule, or seen and outranked.

    .venv/bin/python bench/fraud_novelty_losses.py --seed 7     # 3000 accounts x 45 days, ~8 min on 1 core

The leave-one-typology-out table (``bench/fraud_quality.py --leave-out``) gives one recall per typology. This
script splits it, for the served column (boosted trees + learned categorical risk + the novelty tier with its
sequence detector, ``fraud train --learner gbm --categorical-risk`` beside ``fraud train-novelty --sequence``),
on the same stream, split and folds as that table:

- ``flagged``: share of the left-out typology's test frauds that the novelty rule flags (``t >= 0``: beyond the
  card's 99.8% legitimate line, so at least a review);
- ``caught``: share in the 1% alert budget (the table's recall), and ``supervised_alone``: the same fast model's
  probability without the tier;
- ``flagged_not_caught``: flagged but outranked in the budget (a combination or budget problem);
  ``not_flagged_not_caught``: missed and not flagged (a detection problem);
- the budget's make-up: its size, its legitimate rows, the rows the tier raised into it (flagged with a fast
  probability below ``review``), and the legitimate rows the tier flags in the whole test part.

Writes ``fraud_novelty_losses.json`` and ``.png`` (stacked bars per typology) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from npusuite.fraud import leave_out as lo
from npusuite.fraud.boosted_model import GbmTrainConfig
from npusuite.fraud.fast_model import FastTrainConfig
from npusuite.fraud.generator import GeneratorConfig, generate
from npusuite.fraud.leave_out_tiers import SequenceTierMethod, Tiers
from npusuite.fraud.novelty import NoveltyTrainConfig
from npusuite.fraud.novelty_sequence import SequenceTrainConfig
from npusuite.fraud.schema import Label, parse_transaction
from npusuite.platform.contracts.labels import GENERATED_TYPOLOGIES

OUT = Path(__file__).resolve().parent / "out"
logger = logging.getLogger("bench.fraud_novelty_losses")


@dataclass
class Recorded:
    """The served column as a leave-out method, keeping each fold's novelty ``t`` and fast probability."""

    method: SequenceTierMethod
    seen: dict[int, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.method.name

    def fit_predict(self, train: lo.Part, test: lo.Part) -> np.ndarray:
        score = self.method.fit_predict(train, test)
        fitted = self.method.tiers.fitted(train, test)
        self.seen[id(test)] = (self.method.excess(train, test), fitted.probability, fitted.review)
        return score


def losses(score: np.ndarray, t: np.ndarray, probability: np.ndarray, review: float, test: lo.Part,
           typology: str, budget: float) -> dict:
    """The split of one fold's left-out typology (see the module docstring).  Pure."""
    top, alone = lo.alerted(score, budget), lo.alerted(probability, budget)
    mine, flagged = test.types == typology, t >= 0

    def share(mask: np.ndarray) -> float:
        return round(float(mask[mine].mean()), 4)

    return {"left_out_test_fraud": int(mine.sum()), "caught": share(top), "supervised_alone": share(alone),
            "flagged": share(flagged), "caught_and_flagged": share(top & flagged),
            "caught_not_flagged": share(top & ~flagged), "flagged_not_caught": share(flagged & ~top),
            "not_flagged_not_caught": share(~flagged & ~top), "budget": int(top.sum()),
            "budget_legitimate": int((top & ~test.y).sum()),
            "budget_raised_by_novelty": int((top & flagged & (probability < review)).sum()),
            "legitimate_flagged": int((flagged & ~test.y).sum()), "test": len(score)}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["typologies"]
    names = list(rows)
    parts = (("caught_and_flagged", "caught, flagged by novelty", "tab:green"),
             ("caught_not_flagged", "caught, not flagged", "tab:olive"),
             ("flagged_not_caught", "flagged, outranked", "tab:orange"),
             ("not_flagged_not_caught", "missed, not flagged", "tab:red"))
    fig, ax = plt.subplots(figsize=(8, 5))
    left = np.zeros(len(names))
    for key, label, colour in parts:
        values = np.array([rows[n][key] for n in names])
        ax.barh(names, values, left=left, label=label, color=colour)
        left += values
    ax.scatter([rows[n]["supervised_alone"] for n in names], names, marker="|", s=300, color="black",
               label="recall without the tier", zorder=3)
    ax.axvline(0.8, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlim=(0, 1), xlabel=f"share of the left-out typology's test fraud (budget {report['alert_budget']:.0%})",
           title=f"Served column, left-out typologies (seed {report['config']['seed']}; mean caught "
                 f"{report['mean_caught']:.3f})")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7, help="generator and training seed (default 7)")
    ap.add_argument("--accounts", type=int, default=3000, help="the leave-out table's size (default 3000)")
    ap.add_argument("--days", type=int, default=45, help="the last third tests (default 45)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    gen = GeneratorConfig(accounts=args.accounts, days=args.days, seed=args.seed)
    rows, label_rows = generate(gen, progress=False)
    transactions = [parse_transaction(r) for r in rows]
    labels = {lab["transaction_id"]: Label.model_validate(lab) for lab in label_rows}
    until = gen.start + timedelta(days=gen.days * 2 / 3)  # bench/fraud_quality.py's split
    seed = args.seed
    mlp = Tiers(FastTrainConfig(seed=seed), NoveltyTrainConfig(seed=seed))
    boosted_risk = Tiers(FastTrainConfig(seed=seed), NoveltyTrainConfig(seed=seed), boosted=GbmTrainConfig(seed=seed),
                         with_risk=True, novelty_from=mlp)
    served = Recorded(SequenceTierMethod("boosted + categorical risk + sequence novelty", boosted_risk,
                                         SequenceTrainConfig(seed=seed)))
    budget = 0.01
    report: dict = {"benchmark": "fraud_novelty_losses", "column": served.name, "alert_budget": budget,
                    "config": {"accounts": args.accounts, "days": args.days, "seed": seed, "until": until.isoformat()},
                    "typologies": {}}

    def on_result(typology: str, _name: str, score: np.ndarray, test: lo.Part) -> None:
        if typology == lo.NONE or not (test.types == typology).any():
            return
        t, probability, review = served.seen[id(test)]
        report["typologies"][typology] = losses(score, t, probability, review, test, typology, budget)
        logger.info("%s: %s", typology, report["typologies"][typology])

    lo.leave_out(transactions, labels, until, [lo.NONE, *(t.value for t in GENERATED_TYPOLOGIES)], [served], budget,
                 on_result=on_result)
    results = report["typologies"].values()
    report["mean_caught"] = round(float(np.mean([r["caught"] for r in results])), 4)
    report["mean_supervised_alone"] = round(float(np.mean([r["supervised_alone"] for r in results])), 4)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fraud_novelty_losses.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "fraud_novelty_losses.png")
    for name, r in report["typologies"].items():
        print(f"{name:20s} caught {r['caught']:.3f} (alone {r['supervised_alone']:.3f}); "
              f"flagged {r['flagged']:.3f}; flagged, outranked {r['flagged_not_caught']:.3f}; "
              f"missed, not flagged {r['not_flagged_not_caught']:.3f}")
    print(f"mean caught {report['mean_caught']} (without the tier {report['mean_supervised_alone']}); "
          f"{args.out / 'fraud_novelty_losses.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
