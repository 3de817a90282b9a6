"""``fraud train``: replay a labelled stream through the feature code and train both models.

Order of work (each step logs what it did):
1. read the transactions (time-sorted) and merge the label files, later
   files winning (:func:`npusuite.fraud.datasets.merge_labels`); then lay
   the analysts' decisions (``review export-labels``, ``--extra-labels``)
   over them (:func:`~npusuite.fraud.datasets.overlay_labels`): an analyst's
   decision overrides the original label of that transaction, and the model
   card's ``data.analyst_labels`` records how many applied and which
   transactions flipped; a transaction without any label counts as genuine,
   and the count is logged;
2. replay the whole stream through :mod:`npusuite.fraud.features`;
3. with ``categorical_risk`` on (``fraud train --categorical-risk``), learn
   categorical risk (:mod:`npusuite.fraud.categorical`): each row's time-safe
   risk (labels known before it) for fitting, and the table of all training
   labels for serving, kept in the model and its card (``categorical_risk``);
   off, the key columns are held at 0 (:func:`~npusuite.fraud.fast_model.no_risk`)
   and the card says ``{"enabled": false}``;
   train the fast model on the first 80% (by time), calibrate on the last
   20%, and choose thresholds there: ``review`` at the alert budget (1% of
   transactions by default), ``decline`` where precision reaches 90%
   (at least the top 0.1%), and the LLM grey band around ``review``;
4. fine-tune the LLM verdict model on all fraud and the hardest genuine
   transactions of the first 80%, held out on the last 20%;
5. write ``MODEL_DIR`` (see :mod:`npusuite.fraud.bundle`) and, with a model
   root, add both as repository versions with their cards.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from npusuite.fraud import categorical, reference_profile
from npusuite.fraud.boosted_model import GbmTrainConfig, train_fast_gbm
from npusuite.fraud.datasets import LabelOverlay, merge_labels, overlay_labels, read_labels, read_transactions
from npusuite.fraud.fast_model import FastTrainConfig, RiskInputs, save_fast_model, train_fast_model
from npusuite.fraud.features import FEATURE_NAMES, StreamFeaturizer
from npusuite.fraud.llm_verdict import LlmTrainConfig
from npusuite.fraud.schema import Transaction
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

#: The fast model's learners (`fraud train --learner`).
LEARNERS = ("mlp", "gbm")


@dataclass
class Dataset:
    transactions: list[Transaction]
    y: np.ndarray
    fraud_types: list[str | None]
    x: np.ndarray
    sources: list[str] = field(default_factory=list)
    #: What analysts' labels changed; None when none were given.
    analyst: LabelOverlay | None = None


@dataclass(frozen=True)
class TrainConfig:
    fast: FastTrainConfig = FastTrainConfig()
    llm: LlmTrainConfig = LlmTrainConfig()
    with_llm: bool = True
    llm_base: Path | None = None
    llm_examples: int = 1200
    alert_budget: float = 0.01
    name: str = "fraud"
    risk: categorical.RiskConfig = categorical.RiskConfig()
    #: Learned categorical risk (issue 19); off by default: see docs/fraud-models.md for the measurement.
    categorical_risk: bool = False
    #: The fast model's learner: "mlp" (the default) or "gbm", boosted trees (docs/fraud-models.md,
    #: "Boosted fast model"); ``gbm`` holds the boosted trees' settings.
    learner: str = "mlp"
    gbm: GbmTrainConfig = GbmTrainConfig()


def _training_card(config: TrainConfig, info: dict) -> dict:
    """The card's ``training``: the learner's settings and its calibration."""
    if config.learner == "gbm":
        return {**asdict(config.gbm), "seed": config.fast.seed, "trees": info["trees"], "platt": info["platt"]}
    return {**asdict(config.fast), "pos_weight": round(info["pos_weight"], 3), "platt": info["platt"]}


def load_dataset(data: Path, label_files: list[Path], progress: bool = True,
                 analyst_files: list[Path] | tuple[Path, ...] = ()) -> Dataset:
    """Raises NotFoundError / SchemaError (one line naming file, line and field)."""
    txs, inline = read_transactions(data)
    labels = merge_labels([inline, *[read_labels(p) for p in label_files]])
    analyst = None
    if analyst_files:
        extra = merge_labels([read_labels(p) for p in analyst_files])
        labels, analyst = overlay_labels(labels, extra, [tx.transaction_id for tx in txs],
                                         [str(p) for p in analyst_files])
    if not labels:
        raise UserError(f"no labels: {data} carries no is_fraud fields and no --labels file was given")
    missing = sum(1 for tx in txs if tx.transaction_id not in labels)
    if missing:
        logger.info("%d of %d transactions have no label and count as genuine", missing, len(txs))
    y = np.array([labels[tx.transaction_id].is_fraud if tx.transaction_id in labels else False for tx in txs])
    types = [labels[tx.transaction_id].fraud_type if tx.transaction_id in labels else None for tx in txs]
    x = StreamFeaturizer().matrix(txs, progress=progress)
    logger.info("replayed %d transactions (%d fraud) through the streaming features", len(txs), int(y.sum()))
    return Dataset(txs, y, types, x, [str(data), *map(str, label_files), *map(str, analyst_files)], analyst)


def _by_type(ds: Dataset) -> dict[str, int]:
    """Fraud labels per typology (``unknown`` when a label has none)."""
    counts = Counter(t or "unknown" for t, fraud in zip(ds.fraud_types, ds.y.tolist(), strict=True) if fraud)
    return dict(sorted(counts.items()))


def _top_k(p: np.ndarray, budget: float) -> int:
    return max(1, int(np.ceil(budget * len(p))))


def choose_thresholds(p: np.ndarray, y: np.ndarray, budget: float) -> dict[str, float]:
    """Thresholds on calibrated probabilities from a held-out slice (see module doc)."""
    order = np.sort(p)[::-1]
    review = float(order[_top_k(p, budget) - 1])
    ranked = y[np.argsort(-p, kind="stable")]
    precision = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    good = np.flatnonzero(precision >= 0.9)
    decline = float(order[good[-1]]) if len(good) else float(order[_top_k(p, budget / 10) - 1])
    decline = max(decline, float(order[_top_k(p, budget / 10) - 1]), review)
    grey_low = float(order[_top_k(p, budget * 1.5) - 1])
    grey_high = min(decline, float(order[_top_k(p, budget * 0.5) - 1]))
    return {"review": review, "decline": decline, "grey_low": min(grey_low, grey_high), "grey_high": grey_high}


def quality(p: np.ndarray, y: np.ndarray, budgets: tuple[float, ...] = (0.005, 0.01)) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict = {"rows": len(p), "fraud": int(y.sum())}
    if 0 < y.sum() < len(y):
        out["average_precision"] = round(float(average_precision_score(y, p)), 4)
        out["roc_auc"] = round(float(roc_auc_score(y, p)), 4)
    ranked = y[np.argsort(-p, kind="stable")]
    for b in budgets:
        k = _top_k(p, b)
        out[f"recall_at_{b:.1%}"] = round(float(ranked[:k].sum() / max(1, y.sum())), 4)
        out[f"precision_at_{b:.1%}"] = round(float(ranked[:k].mean()), 4)
    return out


def learn_risk(ds: Dataset, config: categorical.RiskConfig) -> tuple[RiskInputs, dict]:
    """Time-safe risk per row and the serving table (with its card) from the data set's labels."""
    columns = [FEATURE_NAMES.index(name) for name in categorical.KEY_FEATURES]
    keys = ds.x[:, columns]
    times = np.array([tx.epoch_s for tx in ds.transactions])
    time_safe = categorical.time_safe_risk(keys, ds.y, times, config)
    fitted = categorical.fit_table(keys, ds.y, categorical.raw_fields(ds.transactions), config)
    sizes = [categorical.SPECS[f].buckets for f in categorical.FIELDS]
    return RiskInputs(columns, sizes, time_safe, fitted.table), fitted.card


def _llm_examples(ds: Dataset, p_all: np.ndarray, rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """All fraud rows (up to n/2), then the hardest genuine rows, then random genuine rows."""
    fraud = rows[ds.y[rows]]
    genuine = rows[~ds.y[rows]]
    fraud = fraud if len(fraud) <= n // 2 else rng.choice(fraud, n // 2, replace=False)
    hard = genuine[np.argsort(-p_all[genuine], kind="stable")[: n // 4]]
    rest = np.setdiff1d(genuine, hard)
    easy = rng.choice(rest, min(len(rest), n - len(fraud) - len(hard)), replace=False)
    return np.sort(np.concatenate([fraud, hard, easy]))


def train(ds: Dataset, out_dir: Path, config: TrainConfig = TrainConfig(), model_root: Path | None = None,
          promote: bool = False, progress: bool = True) -> dict:
    """Train, save and (optionally) publish.  Returns the combined model card."""

    from npusuite.fraud import bundle
    from npusuite.fraud.llm_verdict import fine_tune, prompt_for

    if ds.y.sum() < 5:
        raise UserError(f"only {int(ds.y.sum())} fraud labels: need at least 5 to train")
    fast_version, llm_version = bundle.next_versions(model_root, config.name)
    risk, risk_card = learn_risk(ds, config.risk) if config.categorical_risk else (None, {})
    risk_card = {"enabled": config.categorical_risk, **risk_card}
    if config.learner not in LEARNERS:
        raise UserError(f"unknown learner {config.learner!r}: choose one of {', '.join(LEARNERS)}")
    try:
        if config.learner == "gbm":
            module, info = train_fast_gbm(ds.x, ds.y, replace(config.gbm, seed=config.fast.seed), risk=risk)
        else:
            module, info = train_fast_model(ds.x, ds.y, config.fast, progress=progress, risk=risk)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    thresholds = choose_thresholds(info["p_cal"], info["y_cal"], config.alert_budget)
    cut = info["rows_fit"]
    times = [ds.transactions[0].timestamp, ds.transactions[cut].timestamp, ds.transactions[-1].timestamp]
    card: dict = {
        "ref": f"{config.name}-fast@{fast_version}",
        "kind": "fraud-fast",
        "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"sources": ds.sources, "transactions": len(ds.y), "fraud": int(ds.y.sum()),
                 "fraud_rate": round(float(ds.y.mean()), 5), "first": times[0].isoformat(),
                 "calibration_from": times[1].isoformat(), "last": times[2].isoformat(),
                 "fraud_by_type": _by_type(ds),
                 "analyst_labels": None if ds.analyst is None else ds.analyst.model_dump()},
        "features": list(FEATURE_NAMES),
        "categorical_risk": risk_card,
        "learner": config.learner,
        "training": _training_card(config, info),
        "metrics_calibration_slice": quality(info["p_cal"], info["y_cal"]),
        "alert_budget": config.alert_budget,
        "thresholds": thresholds,
        reference_profile.KEY: reference_profile.profile(ds.x, info["p_all"], FEATURE_NAMES),  # drift PSI
        "llm": None,
    }
    fast_dir = out_dir / "fast"
    if config.with_llm:
        p_all = info["p_all"]  # with each row's time-safe risk: the final table has seen these labels
        rng = np.random.default_rng(config.fast.seed)
        fit_rows = _llm_examples(ds, p_all, np.arange(cut), config.llm_examples, rng)
        hold_rows = _llm_examples(ds, p_all, np.arange(cut, len(ds.y)), max(100, config.llm_examples // 4), rng)
        featurizer = StreamFeaturizer()
        prompts = []
        keep = set(fit_rows.tolist()) | set(hold_rows.tolist())
        for i, tx in enumerate(ds.transactions):  # replay again to get Features objects for the prompts
            f = featurizer.advance(tx)
            if i in keep:
                prompts.append((i, prompt_for(tx, f)))
        by_row = dict(prompts)
        try:
            llm_card = fine_tune([by_row[i] for i in fit_rows], ds.y[fit_rows], out_dir / "llm", config.llm,
                                 base_dir=config.llm_base,
                                 holdout=([by_row[i] for i in hold_rows], ds.y[hold_rows]), progress=progress)
        except ValueError as exc:
            raise UserError(f"LLM verdict model: {exc}") from None
        llm_card["ref"] = f"{config.name}-llm@{llm_version}"
        (out_dir / "llm" / "card.json").write_text(json.dumps(llm_card, indent=2) + "\n")
        card["llm"] = llm_card["ref"]
        card["llm_card"] = llm_card
    fast_card = {k: v for k, v in card.items() if k != "llm_card"}
    save_fast_model(module, fast_dir, fast_card)
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    if model_root is not None:
        card["repository"] = bundle.publish(out_dir, model_root, config.name, card, promote)
        (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    logger.info("trained %s: %s; thresholds %s", card["ref"], card["metrics_calibration_slice"], thresholds)
    return card
