"""Sequence novelty (evaluation only): how far a transaction is from what the account's recent transactions predict.

Issue 19 names "a sequence model of the account's recent transactions" as a novelty detector.  The served
novelty forest (:mod:`npusuite.fraud.novelty`) reads one transaction's features, which already put it against
the account's own history (amount against its median, first-seen device, counts per window); what it cannot
read is the *order*: a card that paid in the home town this morning and in a far city at noon, at ordinary
amounts, is two ordinary rows.  This module learns that order from legitimate behaviour.

Rules:

- :class:`SequenceNovelty` is a GRU that reads the account's previous ``history`` feature rows (oldest first,
  standardised, the categorical key columns held at 0 as the autoencoder does, with a presence flag for
  accounts with a shorter past) and predicts the current row.  Its score is the mean squared prediction
  error over the non-key features: how unexpected this transaction is *given this account's recent ones*.
- Trained on legitimate transactions only: a row labelled fraud is neither a target nor part of any history
  while training (a test proves fraud rows never change the weights), so it is aimed at no typology.  When
  scoring, the history is whatever the account did (labels are unknown live).
- The first ``1 - calibration_fraction`` of the legitimate rows (by time) fit it; the rest calibrate it.
- :func:`previous_rows` is the pure index step (no I/O, no model): each row's previous rows of the same
  account, by time.
- Deterministic for a given seed and data.

Evaluation only: the live scorer does not keep the last rows per account yet, so this is a leave-out method
(:class:`~npusuite.fraud.leave_out_tiers.SequenceTierMethod`), not a served model.  The measurements and the
rule it is judged by: ``docs/fraud-models.md``, "A learned sequence model".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from npusuite.fraud.categorical import KEY_FEATURES
from npusuite.fraud.features import FEATURE_NAMES
from npusuite.platform.contracts.transaction import Transaction

logger = logging.getLogger(__name__)

#: Features the error is taken over (the key columns are hash buckets, not magnitudes).
_KEEP = np.array([name not in KEY_FEATURES for name in FEATURE_NAMES])


@dataclass(frozen=True)
class SequenceTrainConfig:
    """The settings measured in docs/fraud-models.md (fixed before the first run)."""

    history: int = 8
    hidden: int = 64
    epochs: int = 4
    learning_rate: float = 1e-3
    batch: int = 1024
    calibration_fraction: float = 0.2
    seed: int = 0


def previous_rows(transactions: Sequence[Transaction], history: int,
                  keep: np.ndarray | None = None) -> np.ndarray:
    """(N, history) indices of each row's previous ``history`` rows of the same account, oldest first, -1 where
    the account has no such row.  Ties in time keep the input order.  With ``keep`` (bool, N), rows outside it
    are no one's history and have none themselves (all -1)."""
    n = len(transactions)
    account = np.array([tx.account_id for tx in transactions])
    when = np.array([tx.timestamp.timestamp() for tx in transactions])
    rows = np.arange(n) if keep is None else np.flatnonzero(keep)
    order = rows[np.lexsort((rows, when[rows], account[rows]))]
    first = np.r_[True, account[order][1:] != account[order][:-1]]
    block_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    out = np.full((n, history), -1, dtype=np.int64)
    position = np.arange(len(order))
    for back in range(1, history + 1):
        earlier = position - back
        has = earlier >= block_start
        out[order[has], history - back] = order[earlier[has]]
    return out


class SequenceNovelty(nn.Module):
    """A GRU over the account's previous rows that predicts the current one; carries its standardisation."""

    def __init__(self, n_features: int, config: SequenceTrainConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("keep", torch.from_numpy(_KEEP.copy()))
        self.rnn = nn.GRU(n_features + 1, config.hidden, batch_first=True)
        self.head = nn.Linear(config.hidden, n_features)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        z = np.clip((x - self.mean.numpy()) / self.scale.numpy(), -10.0, 10.0).astype(np.float32)
        z[:, ~self.keep.numpy()] = 0.0
        return z

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        """(B, history, n_features + 1) -> (B, n_features): the predicted standardised current row."""
        _, last = self.rnn(histories)
        return self.head(last[-1])


def _histories(z: np.ndarray, previous: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    index = previous[rows]
    present = index >= 0
    past = z[np.where(present, index, 0)] * present[..., None]
    return torch.from_numpy(np.concatenate([past, present[..., None].astype(np.float32)], axis=2))


def fit_sequence_novelty(transactions: Sequence[Transaction], x: np.ndarray, y: np.ndarray,
                         config: SequenceTrainConfig = SequenceTrainConfig()) -> tuple[SequenceNovelty, np.ndarray]:
    """Train on the legitimate rows only; returns the model and the indices of the calibration rows (the last
    ``calibration_fraction`` of the legitimate rows, in the given order, which is time order for a stream)."""
    legit = ~np.asarray(y, dtype=bool)
    rows = np.flatnonzero(legit)
    if len(rows) < 10:
        raise ValueError(f"need at least 10 legitimate rows to train the sequence model, got {len(rows)}")
    cut = int(len(rows) * (1.0 - config.calibration_fraction))
    fit_rows, calibration = rows[:cut], rows[cut:]
    torch.manual_seed(config.seed)
    model = SequenceNovelty(x.shape[1], config)
    model.mean.copy_(torch.from_numpy(x[fit_rows].mean(0)))
    model.scale.copy_(torch.from_numpy(x[fit_rows].std(0) + 1e-6))
    z = model.standardise(x)
    target = torch.from_numpy(z)
    previous = previous_rows(transactions, config.history, legit)
    optimiser = torch.optim.Adam(model.parameters(), config.learning_rate)
    rng = np.random.default_rng(config.seed)
    for epoch in range(config.epochs):
        total = 0.0
        order = rng.permutation(fit_rows)
        for start in range(0, len(order), config.batch):
            batch = order[start:start + config.batch]
            loss = ((model(_histories(z, previous, batch)) - target[batch]) ** 2)[:, model.keep].mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        logger.info("sequence novelty epoch %d: mean squared error %.4f", epoch + 1, total / max(1, len(order)))
    return model.eval(), calibration


def sequence_error(model: SequenceNovelty, transactions: Sequence[Transaction], x: np.ndarray,
                   rows: np.ndarray) -> np.ndarray:
    """The score of ``rows``: mean squared error of the prediction from each row's account history (all rows of
    ``transactions`` count as history, as live)."""
    z = model.standardise(x)
    previous = previous_rows(transactions, model.config.history)
    keep = model.keep.numpy()
    out = np.empty(len(rows))
    with torch.inference_mode():
        for start in range(0, len(rows), 4096):
            batch = rows[start:start + 4096]
            predicted = model(_histories(z, previous, batch)).numpy()
            out[start:start + len(batch)] = ((predicted - z[batch]) ** 2)[:, keep].mean(1)
    return out
