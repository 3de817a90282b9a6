"""The novelty tier: how far a transaction's behaviour is from legitimate behaviour, trained on legitimate data only.

Two detectors over the same streaming features as the fast model, in one
module (:class:`NoveltyAE`, architecture ``fraud-novelty-ae``): an isolation
forest (:mod:`npusuite.fraud.novelty_forest`), whose score is the novelty the
combination rule reads, and a small autoencoder, whose per-group errors give
the readable reason.  The forest scores: on the leave-one-typology-out table
it caught far more of the left-out typologies than the autoencoder's error at
the same share of legitimate traffic (``docs/fraud-models.md``, "Novelty
tier").  A module saved without a forest (``n_trees`` 0, the models of
before) scores with the autoencoder's error as it did.  The features already
measure the transaction against the account's own history (amount against the
account's median, first-seen device, transactions in the last hour, distance
from the last card-present payment ...); the forest isolates a transaction in
few random splits when some of its values are rare among legitimate ones, and
the autoencoder's reconstruction error says which combinations legitimate
behaviour does not produce.  Rules:

- Trained on legitimate transactions only (``is_fraud`` false): it is general,
  aimed at no typology, so it can flag fraud no label has shown yet.  The
  first 80% (by time) fit it; the last 20% calibrate it.
- The module carries its standardisation and the per-group scale of the
  legitimate error as buffers, so ``forward(features) -> novelty`` is the whole
  model wherever it is loaded.  The error is squared per standardised feature,
  averaged per feature group (:data:`NOVELTY_GROUPS`: the fast model's reason
  groups plus ``history`` and ``channel`` for the rest) and divided by that
  group's mean error on legitimate data, so a group at 1.0 is as unusual as
  legitimate behaviour usually is; ``novelty`` is the mean over groups (the
  largest group instead was tried and did worse: docs/fraud-models.md).
- With a forest, ``novelty`` is the forest's isolation score (in (0, 1]; 0.5
  and above: isolated faster than an average point), the same for the card's
  calibration, the rule and the bench; the autoencoder still gives the group
  errors of the reason.
- The categorical key features (:data:`~npusuite.fraud.categorical.KEY_FEATURES`)
  are hash buckets, not magnitudes: they are in no group, and a feature in no
  group is also held at 0 on the way in, so it neither enters nor counts (the
  forest reads the grouped features only).
- The card records the calibration (quantiles of ``novelty`` on the held-out
  legitimate slice), each feature's 5-95% legitimate range in its documented
  unit (for reasons), and the combination rule (:class:`NoveltyRule`) the
  scorer applies; see ``docs/fraud-models.md``.
- Reasons are readable: the group with the largest error, its feature with the
  largest error, this transaction's value against the legitimate range.
- Optional third detector, the account's recent sequence (``fraud train-novelty --sequence``,
  :mod:`npusuite.fraud.novelty_sequence`): a GRU that reads the account's previous
  :data:`~npusuite.fraud.features.HISTORY_ROWS` feature rows (kept in its state) and predicts this one,
  trained on the same legitimate rows and calibrated on the same held-out ones (their sorted errors are a
  buffer of the module).  The novelty is then the larger of two legitimate tail log-odds, the forest's (its
  quantiles: the card's ``calibration.forest_quantiles``) and the sequence's (the share of calibration errors
  at least as high), and the card's ``calibration.quantiles`` are that evidence's, so the rule and the scorer
  are unchanged.  The reason then quotes the feature the history predicted worst, e.g. "novelty:
  country_share 0.00 where the account's last 8 predict 1.03 (top 0.02% of legitimate)".  It costs
  scoring time: ``bench/fraud_hot_path.py --novelty``.
- :func:`train_novelty` is deterministic for a given seed and data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from npusuite.fraud import reasons as rs
from npusuite.fraud.bundle import CARD, read_card
from npusuite.fraud.categorical import KEY_FEATURES
from npusuite.fraud.fast_model import REASON_GROUPS
from npusuite.fraud.features import FEATURE_NAMES, N_FEATURES, Features
from npusuite.fraud.novelty_forest import ForestTensors, fit_forest
from npusuite.fraud.novelty_rule import NoveltyConfig, NoveltyRule, tail_log_odds
from npusuite.fraud.novelty_sequence import (
    SequenceNovelty,
    SequenceScores,
    SequenceTrainConfig,
    fit_sequence_novelty,
    live_scores,
    sequence_error,
)
from npusuite.fraud.rules import decoded
from npusuite.fraud.schema import Transaction
from npusuite.platform.contracts.labels import ReasonCode
from npusuite.platform.runtime.modules import load_module, register_architecture, save_module

logger = logging.getLogger(__name__)

ARCH = "fraud-novelty-ae"
_GROUPED = {n for names in REASON_GROUPS.values() for n in names}
NOVELTY_GROUPS: dict[str, tuple[str, ...]] = {
    **REASON_GROUPS,
    "channel": tuple(n for n in FEATURE_NAMES if n.startswith("ch_")),
    "history": tuple(n for n in FEATURE_NAMES
                     if n not in _GROUPED and not n.startswith("ch_") and n not in KEY_FEATURES),
}
GROUP_WORDS = {"amount": "amount", "velocity": "velocity", "new_merchant": "merchant",
               "device_ip": "device and network", "country": "country", "geo": "location",
               "card_testing": "small online payments", "hour": "hour",
               "merchants_1h": "merchants in the hour", "atm": "ATM use", "transfer": "transfers",
               "channel": "channel", "history": "history"}
CALIBRATION_QUANTILES = (0.5, 0.9, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)


@register_architecture(ARCH)
class NoveltyAE(nn.Module):
    """features (B, F) -> novelty (B,); :meth:`errors` also gives the per-group errors (B, G)."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 32, bottleneck: int = 8, n_groups: int = 0,
                 n_trees: int = 0, n_nodes: int = 1, n_columns: int = 1, depth: int = 1, seq_history: int = 0,
                 seq_hidden: int = 0, seq_calibration: int = 0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        # (F, G) averaging matrix: column g holds 1/|g| on g's features; group_scale: legitimate mean per group.
        self.register_buffer("groups", torch.zeros(n_features, max(1, n_groups)))
        self.register_buffer("group_scale", torch.ones(max(1, n_groups)))
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Linear(hidden, bottleneck), nn.SiLU(),
                                 nn.Linear(bottleneck, hidden), nn.SiLU(), nn.Linear(hidden, n_features))
        self.forest = ForestTensors(n_trees, n_nodes, n_columns, depth) if n_trees > 0 else None
        self.sequence = (SequenceNovelty(n_features, SequenceTrainConfig(history=seq_history, hidden=seq_hidden),
                                         seq_calibration) if seq_history > 0 else None)

    @property
    def history(self) -> int:
        """Previous feature rows per transaction its sequence detector reads (0: none)."""
        return self.sequence.config.history if self.sequence is not None else 0

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised features; those in no group (the key features) held at 0."""
        used = (self.groups.sum(dim=1) > 0).to(x.dtype)
        return ((x - self.mean) / self.std).clamp(-8.0, 8.0) * used

    def squared_errors(self, x: torch.Tensor) -> torch.Tensor:
        z = self.standardise(x)
        return (self.net(z) - z) ** 2

    def group_errors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(group errors (B, G), feature errors (B, F)): the autoencoder's view, which names the reason."""
        e = self.squared_errors(x)
        return (e @ self.groups) / self.group_scale, e

    def errors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(novelty (B,), group errors (B, G), feature errors (B, F)) in one pass."""
        g, e = self.group_errors(x)
        return (g.mean(dim=1) if self.forest is None else self.forest(x)), g, e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.errors(x)[0]


class NoveltyScores(NamedTuple):
    """One batch through the novelty model: ``novelty`` is what the card's rule reads; ``groups`` and
    ``features`` are the autoencoder's per-group and per-feature errors (the reason; beside a forest, only on
    the rows the rule flags, see :meth:`NoveltyModel.score`); ``sequence`` is the sequence detector's view, for
    a model that has one (then ``novelty`` is the larger of the forest's and the sequence's legitimate tail
    evidence, ``forest`` the former)."""

    novelty: np.ndarray
    groups: np.ndarray
    features: np.ndarray
    sequence: SequenceScores | None = None
    forest: np.ndarray | None = None


@dataclass
class NoveltyModel:
    """A loaded novelty model: the module, its reference, its card and its combination."""

    module: NoveltyAE
    ref: str
    card: dict
    config: NoveltyConfig

    @classmethod
    def load(cls, folder: Path, ref: str | None = None) -> NoveltyModel:
        module = load_module(folder)
        card = read_card(folder, ref)
        return cls(module, ref or card.get("ref") or f"{folder.name}@local", card, NoveltyConfig.from_card(card))

    @property
    def history(self) -> int:
        """Previous feature rows per transaction the model reads (0: it reads the transaction alone)."""
        return self.module.history

    @torch.inference_mode()
    def score(self, x: np.ndarray, history: tuple[np.ndarray, np.ndarray] | None = None,
              explain_all: bool = False) -> NoveltyScores:
        """The novelty of a feature matrix, one forward pass.  A model with a sequence detector also needs
        ``history``: each row's previous feature rows and their presence
        (:func:`~npusuite.fraud.features.history_block`); raises ValueError without it.

        With a forest, the autoencoder's errors (``groups``, ``features``: the reason) are computed only for
        the rows the card's rule flags (``t >= 0``), zero elsewhere: only those rows get a novelty reason, and
        the autoencoder on every row cost a tenth of the tier (bench/fraud_hot_path.py).  ``explain_all``
        computes them for every row."""
        x = np.asarray(x, dtype=np.float32)
        module = self.module
        if module.forest is None:  # the autoencoder's error is the novelty: it runs on every row anyway
            novelty, groups, feats = module.errors(torch.from_numpy(x))
            return NoveltyScores(novelty.double().numpy(), groups.numpy(), feats.numpy())
        forest = module.forest(torch.from_numpy(x)).double().numpy()
        sequence = None
        novelty = forest
        if module.sequence is not None:
            if history is None:
                raise ValueError(f"{self.ref} reads the account's last {self.history} transactions: no history given")
            rows, present = history
            keep = self.history  # the states keep HISTORY_ROWS; the model may read fewer, the most recent
            sequence = live_scores(module.sequence, x, rows[:, rows.shape[1] - keep:],
                                   present[:, present.shape[1] - keep:])
            forest = tail_log_odds(forest, self.card["calibration"]["forest_quantiles"])
            novelty = np.maximum(forest, sequence.evidence)
        explain = slice(None) if explain_all else np.flatnonzero(self.config.excess(novelty) >= 0)
        groups = np.zeros((len(x), module.group_scale.numel()), dtype=np.float32)
        feats = np.zeros_like(x)
        if explain_all or len(explain):
            g, e = module.group_errors(torch.from_numpy(x[explain]))
            groups[explain], feats[explain] = g.numpy(), e.numpy()
        return NoveltyScores(novelty, groups, feats, sequence, forest if sequence is not None else None)

    def reason(self, tx: Transaction, f: Features, scores: NoveltyScores, i: int) -> rs.Reason:
        """Which part of the behaviour is unusual, against what history (one bounded phrase): the sequence
        detector's expectation when its evidence is the larger, else the autoencoder's most unusual group."""
        seq = scores.sequence
        if seq is not None and seq.evidence[i] > scores.forest[i]:
            col = int(seq.column[i])
            name = FEATURE_NAMES[col]
            value, expected = decoded(name, np.array([f.values[col], seq.predicted[i]]))
            share = 0.5 / np.exp(seq.evidence[i])
            k = int(seq.previous[i])
            who = (f"the account's last {k} predict" if k > 1 else "the account's last one predicts" if k == 1
                   else "an account's first payments predict")
            text = (f"novelty: {name} {rs._number(float(value))} where {who} {rs._number(float(expected))} "
                    f"(top {rs._number(100 * share)}% of legitimate)")
            return rs.Reason(ReasonCode.NOVELTY, rs._bounded(text))
        group_errors, feature_errors = scores.groups[i], scores.features[i]
        names = list(NOVELTY_GROUPS)
        g = int(np.argmax(group_errors))
        group = names[g]
        cols = [FEATURE_NAMES.index(n) for n in NOVELTY_GROUPS[group]]
        col = cols[int(np.argmax(feature_errors[cols]))]
        name = FEATURE_NAMES[col]
        value = float(decoded(name, np.array([f.values[col]]))[0])
        lo, hi = (self.card.get("feature_ranges") or {}).get(name, (float("nan"), float("nan")))
        text = (f"novelty: {GROUP_WORDS.get(group, group)} {group_errors[g]:.0f}x as unusual as legitimate; "
                f"{name} {rs._number(value)} against a legitimate {rs._number(lo)}-{rs._number(hi)}")
        return rs.Reason(ReasonCode.NOVELTY, rs._bounded(text))


@dataclass(frozen=True)
class NoveltyTrainConfig:
    hidden: int = 32
    bottleneck: int = 8
    epochs: int = 8
    batch_size: int = 512
    lr: float = 3e-3
    calibration_fraction: float = 0.2
    seed: int = 0
    threads: int = 1
    #: Isolation forest: trees (0 = none: the autoencoder's error is the novelty) and rows per tree.
    #: 100 x 512 keeps the tier's cost within the scorer's throughput goal (bench/fraud_novelty.py).
    trees: int = 100
    tree_rows: int = 512
    #: The sequence detector over the account's previous rows (None: none).  Its calibration fraction is this
    #: config's, so both detectors are calibrated on the same held-out legitimate rows.
    sequence: SequenceTrainConfig | None = None


def _group_matrix() -> torch.Tensor:
    m = torch.zeros(N_FEATURES, len(NOVELTY_GROUPS))
    for g, names in enumerate(NOVELTY_GROUPS.values()):
        for n in names:
            m[FEATURE_NAMES.index(n), g] = 1.0 / len(names)
    return m


def train_novelty(x: np.ndarray, y: np.ndarray, config: NoveltyTrainConfig = NoveltyTrainConfig(),
                  rule: NoveltyRule = NoveltyRule(), transactions: Sequence[Transaction] | None = None
                  ) -> tuple[NoveltyAE, dict]:
    """Train on the legitimate rows of the time-ordered ``x`` (``y`` true = fraud, left out).

    With ``config.sequence``, also the sequence detector, which needs the ``transactions`` of ``x``'s rows (to
    find each row's previous rows of the same account); the novelty the card calibrates is then the larger of
    the forest's and the sequence's legitimate tail evidence on the same calibration rows.

    Returns the module and the card's ``calibration``, ``feature_ranges``, ``combination`` and ``training``.
    Raises ValueError when there are too few legitimate rows, or a sequence without transactions."""
    if config.sequence is not None and (transactions is None or len(transactions) != len(x)):
        raise ValueError("the sequence detector needs the transactions of every feature row")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    legit = np.asarray(x, dtype=np.float32)[~np.asarray(y, dtype=bool)]
    cut = int(len(legit) * (1.0 - config.calibration_fraction))
    if cut < 100 or len(legit) - cut < 100:
        raise ValueError(f"too few legitimate transactions to train and calibrate ({len(legit)})")
    fit, cal = legit[:cut], legit[cut:]
    module = NoveltyAE(N_FEATURES, config.hidden, config.bottleneck, len(NOVELTY_GROUPS))
    std = fit.std(axis=0)
    module.mean.copy_(torch.from_numpy(fit.mean(axis=0)))
    module.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))
    module.groups.copy_(_group_matrix())
    z = module.standardise(torch.from_numpy(fit))
    opt = torch.optim.AdamW(module.net.parameters(), lr=config.lr, weight_decay=1e-5)
    rng = np.random.default_rng(config.seed)
    module.train()
    for _ in range(config.epochs):
        perm = torch.from_numpy(rng.permutation(len(z)))
        for i in range(0, len(z), config.batch_size):
            batch = z[perm[i:i + config.batch_size]]
            loss = ((module.net(batch) - batch) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    module.eval()
    if config.trees > 0:
        columns = sorted(FEATURE_NAMES.index(n) for names in NOVELTY_GROUPS.values() for n in names)
        module.forest = fit_forest(fit, columns, config.trees, config.tree_rows, config.seed)
    with torch.inference_mode():
        per_group = (module.squared_errors(torch.from_numpy(fit)) @ module.groups).mean(dim=0)
        module.group_scale.copy_(per_group.clamp_min(1e-6))
        novelty = module(torch.from_numpy(cal)).double().numpy()
    levels = sorted({*CALIBRATION_QUANTILES, rule.review_quantile, rule.scale_quantile})
    quantiles = {str(q): float(np.quantile(novelty, q)) for q in levels}
    calibration: dict = {"rows": len(cal), "quantiles": quantiles}
    sequence_card = None
    if config.sequence is not None:
        seq_config = replace(config.sequence, calibration_fraction=config.calibration_fraction)
        module.sequence, rows = fit_sequence_novelty(transactions, x, y, seq_config)
        errors = sequence_error(module.sequence, transactions, np.asarray(x, dtype=np.float32), rows)
        module.sequence.set_calibration(errors)
        evidence = np.maximum(tail_log_odds(novelty, quantiles), module.sequence.evidence(errors))
        calibration = {"rows": len(cal), "quantiles": {str(q): float(np.quantile(evidence, q)) for q in levels},
                       "forest_quantiles": quantiles, "sequence_rows": len(errors)}
        sequence_card = {"history": seq_config.history, "hidden": seq_config.hidden, "epochs": seq_config.epochs,
                         "learning_rate": seq_config.learning_rate, "batch": seq_config.batch,
                         "seed": seq_config.seed, "calibration_errors_kept": int(module.sequence.calibration.numel()),
                         "error_median": float(np.median(errors))}
    ranges = {}
    for j, name in enumerate(FEATURE_NAMES):
        lo, hi = np.quantile(decoded(name, legit[:, j]), [0.05, 0.95])
        ranges[name] = [round(float(lo), 4), round(float(hi), 4)]
    logger.info("novelty model trained on %d legitimate rows (final loss %.4f); calibrated on %d: %s", len(fit),
                float(loss.detach()), len(cal), quantiles)
    return module, {"calibration": calibration, "feature_ranges": ranges,
                    "combination": rule.model_dump(), "groups": {g: list(v) for g, v in NOVELTY_GROUPS.items()},
                    "training": {"rows_fit": len(fit), "final_loss": round(float(loss.detach()), 5),
                                 "hidden": config.hidden, "bottleneck": config.bottleneck, "epochs": config.epochs,
                                 "trees": config.trees, "tree_rows": config.tree_rows, "seed": config.seed},
                    "detector": ("isolation-forest" if config.trees > 0 else "autoencoder")
                    + ("+sequence" if sequence_card else ""),
                    **({"sequence": sequence_card} if sequence_card else {})}


def save_novelty_model(module: NoveltyAE, out_dir: Path, card: dict) -> Path:
    save_module(module, out_dir, ARCH, {"n_features": int(module.mean.numel()),
                                        "hidden": module.net[0].out_features,
                                        "bottleneck": module.net[2].out_features,
                                        "n_groups": int(module.group_scale.numel()),
                                        **(module.forest.config if module.forest is not None else {}),
                                        **({"seq_history": module.sequence.config.history,
                                            "seq_hidden": module.sequence.config.hidden,
                                            "seq_calibration": int(module.sequence.calibration.numel())}
                                           if module.sequence is not None else {})},
                inputs=[{"name": "features", "datatype": "FP32", "shape": [-1, int(module.mean.numel())]}],
                outputs=[{"name": "novelty", "datatype": "FP32", "shape": [-1]}])
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return out_dir
