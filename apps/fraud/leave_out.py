"""Leave-one-typology-out: how well a model catches fraud of a kind it never saw in training.

The protocol (``npusuite fraud evaluate --leave-out TYPOLOGY|all``), as a
bank's model-risk team would run it on a labelled stream:

- Split by time: transactions before ``until`` train, the rest test.
- The left-out typology "never occurred" in training: its fraudulent
  transactions are *removed* from the training part (not relabelled genuine,
  which would teach the model that this fraud is normal, and not kept
  unlabelled).  The account states the features read are built from that same
  training stream, so nothing of the removed episodes leaks through history
  either.  The test part keeps every transaction, and its account states are
  warmed on the training part, as the live scorer's would be.
- Each method is trained on the training part only (its labels; nothing from
  the test period) and scores the test part.  Reported per left-out
  typology: recall of the left-out typology within the alert budget (the top
  ``ceil(budget * n)`` test scores), overall AP and overall recall at the
  budget, plus recall per typology.  ``none`` (nothing left out) is the
  all-typologies reference.
- Honesty: the typologies and the features are fixed before this protocol is
  run; a feature must never be added because it catches one left-out
  typology (see ``docs/fraud-models.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from tqdm import tqdm

from npusuite.fraud.categorical import RiskConfig
from npusuite.fraud.fast_model import FastTrainConfig, train_fast_model
from npusuite.fraud.features import StreamFeaturizer
from npusuite.fraud.schema import Label, Transaction

logger = logging.getLogger(__name__)

NONE = "none"


@dataclass
class Part:
    """One side of the split: transactions, their feature rows, labels and typologies ("" = genuine)."""

    transactions: list[Transaction]
    x: np.ndarray
    y: np.ndarray
    types: np.ndarray


class Method(Protocol):
    """A model under test: trained on ``train`` only, then scores ``test``."""

    name: str

    def fit_predict(self, train: Part, test: Part) -> np.ndarray: ...


@dataclass(frozen=True)
class FastMethod:
    """The fast model as ``fraud train`` trains it; ``with_risk=False`` is the model without learned
    categorical risk (its key columns held at 0 by the model itself, so it sees the 42 streaming
    features only)."""

    name: str
    with_risk: bool = True
    fast: FastTrainConfig = FastTrainConfig()
    risk: RiskConfig = RiskConfig()

    def fit_predict(self, train: Part, test: Part) -> np.ndarray:
        from npusuite.fraud.training import Dataset, learn_risk

        risk = None
        if self.with_risk:
            risk, _ = learn_risk(Dataset(train.transactions, train.y, list(train.types), train.x), self.risk)
        module, _ = train_fast_model(train.x, train.y, self.fast, progress=False, risk=risk)
        import torch

        with torch.inference_mode():
            return module(torch.from_numpy(test.x)).double().numpy()


def _label(labels: dict[str, Label], tx: Transaction) -> tuple[bool, str]:
    lab = labels.get(tx.transaction_id)
    return (False, "") if lab is None or not lab.is_fraud else (True, lab.fraud_type or "")


def _part(txs: list[Transaction], x: np.ndarray, labels: dict[str, Label]) -> Part:
    marks = [_label(labels, tx) for tx in txs]
    return Part(txs, x, np.array([m[0] for m in marks], dtype=bool), np.array([m[1] for m in marks]))


def split(transactions: Sequence[Transaction], labels: dict[str, Label], until: datetime,
          left_out: str, everything: tuple[Part, Part] | None = None) -> tuple[Part, Part]:
    """The two parts for ``left_out`` (a typology value, or :data:`NONE`); features replayed here.

    ``everything``: this function's parts for :data:`NONE` on the same stream.  The streaming features
    read only the transaction's own account's history (:class:`~npusuite.fraud.features.StreamFeaturizer`
    keeps one state per account), so only the accounts that lose a left-out fraud from training are
    replayed again, with exactly the rows a full replay would give (tests/fraud/test_evaluation.py)."""
    train_txs, test_txs = [], []
    for tx in transactions:
        if tx.timestamp >= until:
            test_txs.append(tx)
        elif not (left_out != NONE and _label(labels, tx) == (True, left_out)):
            train_txs.append(tx)
    if not train_txs or not test_txs:
        raise ValueError(f"the split at {until.isoformat()} leaves an empty training or test part")
    if everything is None:
        featurizer = StreamFeaturizer()  # one replay: the test part's states continue from training
        return _part(train_txs, featurizer.matrix(train_txs), labels), _part(test_txs, featurizer.matrix(test_txs),
                                                                              labels)
    full_train, full_test = everything
    kept = {tx.transaction_id for tx in train_txs}
    affected = {tx.account_id for tx in full_train.transactions if tx.transaction_id not in kept}
    x_train = full_train.x[[tx.transaction_id in kept for tx in full_train.transactions]]
    x_test = full_test.x.copy()
    if affected:
        featurizer = StreamFeaturizer()
        rows_train = [i for i, tx in enumerate(train_txs) if tx.account_id in affected]
        rows_test = [i for i, tx in enumerate(test_txs) if tx.account_id in affected]
        x_train[rows_train] = featurizer.matrix([train_txs[i] for i in rows_train])
        x_test[rows_test] = featurizer.matrix([test_txs[i] for i in rows_test])
    return _part(train_txs, x_train, labels), _part(test_txs, x_test, labels)


def _top_k(n: int, budget: float) -> int:
    return max(1, int(np.ceil(budget * n)))


def alerted(p: np.ndarray, budget: float) -> np.ndarray:
    """The rows a ``budget`` share of alerts reaches: the highest scores, ties in row order."""
    out = np.zeros(len(p), dtype=bool)
    out[np.argsort(-p, kind="stable")[:_top_k(len(p), budget)]] = True
    return out


def measure(p: np.ndarray, test: Part, left_out: str, budget: float) -> dict:
    """Overall AP and recall at the budget, the left-out typology's recall, recall per typology."""
    from sklearn.metrics import average_precision_score

    caught = alerted(p, budget)
    y = test.y
    by_type = {str(t): round(float(caught[test.types == t].mean()), 4) for t in sorted(set(test.types[y]) - {""})}
    out = {"average_precision": round(float(average_precision_score(y, p)), 4) if 0 < y.sum() < len(y) else None,
           "recall_at_budget": round(float(caught[y].sum() / max(1, y.sum())), 4),
           "left_out_recall_at_budget": by_type.get(left_out) if left_out != NONE else None,
           "left_out_test_fraud": int((test.types == left_out).sum()) if left_out != NONE else 0,
           "recall_by_type_at_budget": by_type}
    return out


@dataclass
class LeaveOutReport:
    """Per left-out typology, per method: :func:`measure`'s figures; plus the split's sizes."""

    until: str
    budget: float
    rows: dict[str, dict[str, dict]] = field(default_factory=dict)
    sizes: dict[str, dict] = field(default_factory=dict)

    def mean_left_out_recall(self, method: str) -> float | None:
        values = [r[method]["left_out_recall_at_budget"] for t, r in self.rows.items()
                  if t != NONE and r[method]["left_out_recall_at_budget"] is not None]
        return round(float(np.mean(values)), 4) if values else None

    def unmeasured(self) -> list[str]:
        """Left-out typologies with no fraud in the test part: no recall, and not in the mean."""
        return [t for t, s in self.sizes.items() if t != NONE and s["left_out_in_test"] == 0]

    def as_dict(self) -> dict:
        methods = sorted({m for r in self.rows.values() for m in r})
        return {"protocol": "leave-one-typology-out; left-out fraud removed from training; split by time",
                "until": self.until, "alert_budget": self.budget, "sizes": self.sizes, "results": self.rows,
                "mean_left_out_recall": {m: self.mean_left_out_recall(m) for m in methods},
                "not_measured": {t: "no fraud of this typology in the test part: no recall, left out of the mean"
                                 for t in self.unmeasured()}}


def leave_out(transactions: Sequence[Transaction], labels: dict[str, Label], until: datetime,
              typologies: Sequence[str], methods: Sequence[Method], budget: float = 0.01, progress: bool = True,
              on_result: Callable[[str, str, np.ndarray, Part], None] | None = None) -> LeaveOutReport:
    """Run the protocol for each of ``typologies`` (values, or :data:`NONE`) and each method.

    ``on_result(typology, method, scores, test)`` sees every method's test scores (for plots)."""
    report = LeaveOutReport(until.isoformat(), budget)
    bar = tqdm(total=len(typologies) * len(methods), desc="leave-one-out", unit="model", disable=not progress)
    everything = split(transactions, labels, until, NONE)  # replayed once; each fold replays what it changes
    for typology in typologies:
        train, test = everything if typology == NONE else split(transactions, labels, until, typology, everything)
        report.sizes[typology] = {"train": len(train.y), "train_fraud": int(train.y.sum()), "test": len(test.y),
                                  "test_fraud": int(test.y.sum()),
                                  "left_out_in_test": int((test.types == typology).sum())}
        if typology != NONE and not (test.types == typology).any():
            logger.warning("%s has no fraud after %s: its recall cannot be measured", typology, report.until)
        report.rows[typology] = {}
        for method in methods:
            p = method.fit_predict(train, test)
            report.rows[typology][method.name] = measure(p, test, typology, budget)
            if on_result is not None:
                on_result(typology, method.name, p, test)
            logger.info("left out %s, %s: %s", typology, method.name, report.rows[typology][method.name])
            bar.update(1)
    bar.close()
    return report


def plot(report: dict, path, title: str = "Leave-one-typology-out", note: str | None = None) -> None:
    """Bars: each method's recall of the left-out typology at the budget; the legend gives the
    mean over typologies and the AP with nothing left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    typologies = [t for t in rows if t != NONE]
    methods = list(next(iter(rows.values())))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(typologies) + 3), 4.8))
    width = 0.8 / max(1, len(methods))
    for k, m in enumerate(methods):
        values = [rows[t][m]["left_out_recall_at_budget"] or 0.0 for t in typologies]  # n/a: labelled below
        ap = rows.get(NONE, {}).get(m, {}).get("average_precision")
        label = f"{m} (mean {report['mean_left_out_recall'].get(m) or 0:.2f}" + (
            f", AP all-in {ap:.3f})" if ap is not None else ")")
        ax.bar(np.arange(len(typologies)) + (k - (len(methods) - 1) / 2) * width, values, width, label=label)
    ax.axhline(0.8, color="k", ls="--", lw=1)
    sizes = report.get("sizes", {})
    ticks = [f"{t}\n({sizes[t]['left_out_in_test']} in test)" if t in sizes else t for t in typologies]
    ticks = [f"{t.split(chr(10))[0]}\n(none in test: n/a)" if t in report.get("not_measured", {}) else tick
             for t, tick in zip(typologies, ticks, strict=True)]
    ax.set_xticks(range(len(typologies)), ticks, rotation=25, ha="right", fontsize=8)
    ax.set(ylabel=f"recall of the left-out typology at {report['alert_budget']:.1%} alerts", ylim=(0, 1.05),
           title=title)
    ax.legend(fontsize=7, loc="upper left")
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
