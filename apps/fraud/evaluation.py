"""``fraud evaluate``: how much fraud the scores catch within the alerts analysts can work.

Metrics (all on the scored transactions that have a label; unlabelled
scores are counted and left out):
- average precision (area under the precision-recall curve) and ROC-AUC;
- recall and precision at alert budgets of 0.5% and 1% of transactions (the
  top ``ceil(budget * n)`` scores, ties broken by file order);
- daily card precision@100, as in the Fraud Detection Handbook (Le Borgne et
  al.): each day, rank cards by their highest score that day, take the top
  100, and count the share of those cards with a fraudulent transaction that
  day; averaged over days (needs ``card_id`` and ``timestamp`` on the score
  lines, which ``fraud score`` writes);
- recall at the 1% budget and recall of the decisions (review + decline) by
  ``fraud_type``, where labels carry it;
- optionally a PR-curve PNG.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from npusuite.fraud.schema import Label
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

BUDGETS = (0.005, 0.01)
CARD_PRECISION_K = 100


def _top_k(n: int, budget: float) -> int:
    return max(1, math.ceil(budget * n))


def evaluate(scores: list[dict], labels: dict[str, Label], plot: Path | None = None,
             baseline: tuple[str, np.ndarray] | None = None) -> dict:
    """Raises UserError when no score has a label, or only one class is present."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows = [s for s in scores if s["transaction_id"] in labels]
    unlabelled = len(scores) - len(rows)
    if not rows:
        raise UserError("no scored transaction has a label: are these the right files?")
    y = np.array([labels[s["transaction_id"]].is_fraud for s in rows])
    if y.all() or not y.any():
        raise UserError(f"labels of the scored transactions are all {'fraud' if y.all() else 'genuine'}: "
                        "AP and ROC-AUC need both classes")
    p = np.array([float(s["score"]) for s in rows])
    order = np.argsort(-p, kind="stable")
    ranked = y[order]
    out: dict = {"transactions": len(rows), "fraud": int(y.sum()), "unlabelled_scores": unlabelled,
                 "average_precision": round(float(average_precision_score(y, p)), 4),
                 "roc_auc": round(float(roc_auc_score(y, p)), 4), "budgets": {}}
    for b in BUDGETS:
        k = _top_k(len(p), b)
        out["budgets"][f"{b:.1%}"] = {"alerts": k, "recall": round(float(ranked[:k].sum() / y.sum()), 4),
                                      "precision": round(float(ranked[:k].mean()), 4)}
    flagged = np.array([s.get("decision") in ("review", "decline") for s in rows])
    out["decisions"] = {"alerts": int(flagged.sum()), "recall": round(float((flagged & y).sum() / y.sum()), 4),
                        "precision": round(float((flagged & y).sum() / max(1, flagged.sum())), 4)}
    out["daily_card_precision_at_100"] = _daily_card_precision(rows, y)
    in_budget = np.zeros(len(p), dtype=bool)
    in_budget[order[:_top_k(len(p), 0.01)]] = True
    by_type: dict[str, dict] = {}
    types = np.array([labels[s["transaction_id"]].fraud_type or "" for s in rows])
    for t in sorted(set(types[y]) - {""}):
        mask = y & (types == t)
        by_type[t] = {"fraud": int(mask.sum()), "recall_at_1.0%": round(float(in_budget[mask].mean()), 4),
                      "recall_of_decisions": round(float(flagged[mask].mean()), 4)}
    out["recall_by_fraud_type"] = by_type
    if plot is not None:
        curves = [("model", y, p)]
        if baseline is not None:
            curves.append((baseline[0], y, baseline[1]))
        plot_pr(curves, plot)
        out["plot"] = str(plot)
    return out


def _daily_card_precision(rows: list[dict], y: np.ndarray) -> float | None:
    if not rows or any("card_id" not in s or "timestamp" not in s for s in rows):
        logger.info("score lines carry no card_id/timestamp: daily card precision@100 skipped")
        return None
    best: dict[str, dict[str, float]] = defaultdict(dict)
    fraud: dict[str, set[str]] = defaultdict(set)
    for s, is_fraud in zip(rows, y, strict=True):
        day, card = str(s["timestamp"])[:10], s["card_id"]
        best[day][card] = max(best[day].get(card, 0.0), float(s["score"]))
        if is_fraud:
            fraud[day].add(card)
    per_day = []
    for day in sorted(best):
        top = sorted(best[day].items(), key=lambda kv: (-kv[1], kv[0]))[:CARD_PRECISION_K]
        per_day.append(sum(card in fraud[day] for card, _ in top) / CARD_PRECISION_K)
    return round(float(np.mean(per_day)), 4)


def plot_pr(curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str = "Precision-recall") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, y, p in curves:
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=f"{name} (AP {average_precision_score(y, p):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
