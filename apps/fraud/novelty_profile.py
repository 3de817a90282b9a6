"""The behavioural profile: account-relative dimensions for the novelty tier (docs/fraud-models.md, "Behavioural
profile for the novelty tier").

Rules:

- :class:`ProfileBuilder` keeps its own state per account (and one population map of payee -> accounts) and
  reads a time-ordered stream; each row is computed from the past only (the transaction is folded in after its
  row is made), so a row never sees its own or a later transaction.
- Pure: no I/O, no labels.  The fast path's streaming features (``features.py`` / ``feature_kernel.py``) are
  not touched; the profile's columns are appended to the streaming feature row for the novelty forest.
- Partial: used by the leave-one-typology-out protocol (``leave_out_tiers.ProfileTierMethod``); the live
  scorer does not carry this state yet.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from npusuite.fraud.schema import Transaction

PROFILE_NAMES: tuple[str, ...] = (
    "gap_to_usual_log", "account_age_log", "velocity_to_usual_log", "channel_share", "amount_percentile",
    "amount_to_channel_max_log", "payee_population_log", "hour_distance",
)
_DAY = 86400.0


@dataclass
class _Account:
    first: float | None = None
    last: float | None = None
    gaps: list[float] = field(default_factory=list)        # sorted past gaps (s)
    amounts: list[float] = field(default_factory=list)     # sorted past amounts
    times: list[float] = field(default_factory=list)       # past times (ascending)
    days: set[int] = field(default_factory=set)            # active days
    channels: dict[str, int] = field(default_factory=dict)
    channel_max: dict[str, float] = field(default_factory=dict)
    hour_sin: float = 0.0
    hour_cos: float = 0.0


class ProfileBuilder:
    """Profile rows for a time-ordered stream; state continues across calls (train part, then test part)."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._payees: dict[str, set[str]] = {}

    def row(self, tx: Transaction) -> list[float]:
        """The profile of ``tx`` from the past, then ``tx`` folded into the state."""
        a = self._accounts.setdefault(tx.account_id, _Account())
        t = tx.epoch_s
        n = len(a.amounts)
        hour = tx.timestamp.hour + tx.timestamp.minute / 60.0
        payees = math.log1p(len(self._payees.get(tx.merchant_id, ())))  # the population's view, any account
        if n == 0:
            out = [0.0, 0.0, 0.0, 0.0, 0.5, 0.0, payees, 0.0]
        else:
            gap = max(1.0, t - a.last)
            usual_gap = a.gaps[len(a.gaps) // 2] if a.gaps else gap
            recent = n - bisect.bisect_left(a.times, t - _DAY)
            per_day = n / max(1, len(a.days))
            chan = a.channels.get(tx.channel, 0)
            cmax = a.channel_max.get(tx.channel)
            mean_hour = (math.degrees(math.atan2(a.hour_sin, a.hour_cos)) / 15.0) % 24.0
            d = abs(hour - mean_hour) % 24.0
            out = [math.log(gap / max(1.0, usual_gap)), math.log1p((t - a.first) / _DAY),
                   math.log((recent + 1) / (per_day + 1)), chan / n,
                   bisect.bisect_left(a.amounts, tx.amount) / n,
                   0.0 if cmax is None else math.log(tx.amount / cmax),
                   payees, min(d, 24.0 - d)]
        if a.first is None:
            a.first = t
        if a.last is not None:
            bisect.insort(a.gaps, max(1.0, t - a.last))
        a.last = t if a.last is None else max(a.last, t)
        bisect.insort(a.amounts, tx.amount)
        bisect.insort(a.times, t)
        a.days.add(int(t // _DAY))
        a.channels[tx.channel] = a.channels.get(tx.channel, 0) + 1
        a.channel_max[tx.channel] = max(a.channel_max.get(tx.channel, 0.0), tx.amount)
        a.hour_sin += math.sin(math.radians(hour * 15.0))
        a.hour_cos += math.cos(math.radians(hour * 15.0))
        self._payees.setdefault(tx.merchant_id, set()).add(tx.account_id)
        return out

    def matrix(self, transactions: Iterable[Transaction]) -> np.ndarray:
        rows = [self.row(tx) for tx in transactions]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(PROFILE_NAMES))
