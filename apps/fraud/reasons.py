"""Reasons: the few features that drove a score, each a stable code and words an analyst reads.

Rules:
- Every reason is a :class:`Reason`: a stable
  :class:`~npusuite.platform.contracts.labels.ReasonCode` (``amount_spike``,
  ``new_device``, ``llm_unavailable``...) and the phrase with this
  transaction's numbers.  Scores carry both, in the same order: ``reasons``
  (the phrases) and ``reason_codes``; the review queue filters by code.
- :func:`explain_coded` takes the per-group logit contributions from
  :meth:`FastModel.contributions` and the transaction's own feature values,
  and returns at most ``max_reasons`` phrases for the groups that pushed the
  score up by at least ``min_logit``, strongest first.
- Phrases quote the actual numbers ("amount 14x account median",
  "new device and new IP network"), never a raw feature name.
- When nothing pushed the score up, the single reason is
  :data:`NO_RISK` (phrase :data:`NO_RISK_REASON`).  The LLM tier adds
  :func:`llm_verdict` or :data:`LLM_FALLBACK` after the fast model's reasons.
- A group this module has no words for gets code ``other`` and its own name.
- Bounded: a phrase is at most :data:`MAX_PHRASE_CHARS` characters, whatever
  the transaction holds (an amount of 1e308 prints as ``1e+308``, not as 309
  digits), so every alert fits the review app's ingest limit of 256 per
  reason.  Numbers are formatted compactly by :func:`_number`; anything that
  still runs long is cut with an ellipsis.
- Pure: no I/O, no model calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from npusuite.fraud.features import Features
from npusuite.fraud.schema import Transaction
from npusuite.platform.contracts.labels import ReasonCode
from npusuite.platform.contracts.labels import ReasonCode as C


class Reason(NamedTuple):
    code: ReasonCode
    text: str


NO_RISK_REASON = "no risk indicators"
#: The phrase (kept as it always was) when the LLM tier was due but failed.
LLM_UNAVAILABLE = "llm_unavailable"
NO_RISK = Reason(C.NO_RISK, NO_RISK_REASON)
LLM_FALLBACK = Reason(C.LLM_UNAVAILABLE, LLM_UNAVAILABLE)
IMPOSSIBLE_SPEED_KMH = 900.0
#: Longest reason phrase; the review app accepts up to 256 characters per reason.
MAX_PHRASE_CHARS = 120


def _number(value: float, decimals: int = 2) -> str:
    """``12,345.67`` for everyday magnitudes; 3 significant digits (``1.23e+15``, ``1e-320``) beyond."""
    if value != 0 and not 1e-2 <= abs(value) < 1e12:
        return f"{value:.3g}"
    return f"{value:,.{decimals}f}"


def _money(amount: float, currency: str) -> str:
    return f"{_number(amount)} {currency}"


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_PHRASE_CHARS else text[:MAX_PHRASE_CHARS - 1] + "\u2026"


def _count(log1p_value: float) -> int:
    # Counts are log1p of at most a few thousand; min() keeps a corrupt value from printing 300 digits.
    return int(round(math.expm1(min(log1p_value, 30.0))))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{_number(seconds / 86400, 0)} days"


def reason(group: str, tx: Transaction, f: Features) -> Reason:
    """The code and words for one reason group, with this transaction's numbers; at most MAX_PHRASE_CHARS."""
    code, text = _coded(group, tx, f)
    return Reason(code, _bounded(text))


def phrase(group: str, tx: Transaction, f: Features) -> str:
    """The words of :func:`reason`."""
    return reason(group, tx, f).text


def llm_verdict(verdict: str, p_fraud: float) -> Reason:
    """The LLM tier's verdict (``fraud`` or ``legitimate``) as a reason."""
    code = C.LLM_VERDICT_FRAUD if verdict == "fraud" else C.LLM_VERDICT_LEGITIMATE
    return Reason(code, f"LLM verdict: {verdict} ({p_fraud:.0%})")


def rule_hit(name: str, when: str) -> Reason:
    """An analyst's rule that fired: ``rule <name>: <condition>`` (bounded)."""
    return Reason(C.RULE_HIT, _bounded(f"rule {name}: {' '.join(when.split())}"))


def phrases(reasons: Sequence[Reason]) -> list[str]:
    return [r.text for r in reasons]


def codes(reasons: Sequence[Reason]) -> list[str]:
    return [r.code.value for r in reasons]


def _coded(group: str, tx: Transaction, f: Features) -> tuple[ReasonCode, str]:
    if group == "amount":
        ratio = math.exp(f["amount_to_median_log"])
        if f["log_history"] == 0:
            return C.AMOUNT_NO_HISTORY, f"amount {_money(tx.amount, tx.currency)} on an account with no history"
        if ratio >= 1.5:
            return C.AMOUNT_SPIKE, f"amount {_number(ratio, 0)}x account median ({_money(tx.amount, tx.currency)})"
        if ratio <= 0.2:
            return C.AMOUNT_SMALL, f"amount unusually small for account ({_money(tx.amount, tx.currency)})"
        return C.AMOUNT_UNUSUAL, (f"amount {_money(tx.amount, tx.currency)} unusual for account "
                                  f"(z={_number(f['amount_z'], 1)})")
    if group == "velocity":
        n1h, n24 = _count(f["cnt_1h"]), _count(f["cnt_24h"])
        since = math.expm1(f["since_prev_log"])
        if n1h >= 2:
            return C.VELOCITY_BURST, f"{n1h} transactions in the previous hour ({n24} in 24 h)"
        return C.VELOCITY_GAP, f"{_duration(since)} since previous transaction ({n24} in 24 h)"
    if group == "new_merchant":
        what = "first payment to this payee" if tx.channel == "transfer" else "first time at this merchant"
        if f["new_mcc"]:
            what += f" and first in category {tx.merchant_category}"
        return (C.NEW_PAYEE if tx.channel == "transfer" else C.NEW_MERCHANT), what
    if group == "device_ip":
        if f["no_device_ecommerce"]:
            return C.KEYED_NO_DEVICE, "card-not-present charge with no device or IP (keyed by the merchant)"
        parts = []
        if f["new_device"]:
            parts.append("new device")
        elif f["has_device"] and f["device_age_log"] < math.log1p(86400):
            parts.append(f"device first seen {_duration(math.expm1(f['device_age_log']))} ago")
        if f["new_ip_net"]:
            parts.append("new IP network")
        elif f["has_ip"] and f["ip_net_age_log"] < math.log1p(86400):
            parts.append(f"IP network first seen {_duration(math.expm1(f['ip_net_age_log']))} ago")
        if parts:
            return C.NEW_DEVICE, " and ".join(parts)
        return C.DEVICE_IP_UNUSUAL, "device and network pattern unusual for account"
    if group == "country":
        if f["new_country"]:
            return C.NEW_COUNTRY, f"first transaction in country {tx.country}"
        return C.RARE_COUNTRY, (f"country {tx.country} rarely used by account "
                                f"({100 * f['country_share']:.0f}% of history)")
    if group == "geo":
        km, speed = math.expm1(f["geo_km_log"]), math.expm1(f["geo_speed_log"])
        tag = " (impossible travel)" if speed >= IMPOSSIBLE_SPEED_KMH else ""
        text = f"{_number(km, 0)} km from previous card-present payment at {_number(speed, 0)} km/h{tag}"
        return (C.IMPOSSIBLE_TRAVEL if tag else C.GEO_DISTANCE), text
    if group == "card_testing":
        n, m = int(f["small_ecom_10m"]), int(f["small_ecom_merchants_10m"])
        if n <= 1:
            return C.CARD_TESTING, f"small online payment of {_money(tx.amount, tx.currency)} (card testing amount)"
        return C.CARD_TESTING, (f"{n} small online payments at {m} merchant{'s' if m > 1 else ''} within 10 min "
                                "(card testing)")
    if group == "hour":
        return C.UNUSUAL_HOUR, f"unusual hour for account ({tx.timestamp.hour:02d}:00 UTC)"
    if group == "merchants_1h":
        return C.MANY_MERCHANTS, f"{int(f['distinct_merchants_1h'])} different merchants within the hour"
    if group == "atm":
        n = int(f["atm_cnt_24h"])
        if n:
            total = math.expm1(f["atm_sum_24h"]) + tx.amount
            return C.ATM_BURST, f"{n + 1} ATM withdrawals within 24 h ({_number(total, 0)} {tx.currency})"
        return C.ATM_WITHDRAWAL, f"ATM withdrawal of {_number(tx.amount, 0)} {tx.currency}"
    if group == "transfer":
        n = int(f["transfer_cnt_1h"])
        ratio = math.exp(f["transfer_to_max_log"])
        if n:
            return C.TRANSFER_BURST, f"{n + 1} transfers within the hour"
        return C.TRANSFER_SPIKE, f"transfer {_number(ratio, 0)}x the account's largest previous transfer"
    return C.OTHER, group.replace("_", " ")


def explain_coded(tx: Transaction, features: Features, contributions: dict[str, float], max_reasons: int = 3,
                  min_logit: float = 0.25) -> list[Reason]:
    """Reasons for the groups that raised the score most (at least ``min_logit`` each)."""
    ranked = sorted(((v, g) for g, v in contributions.items() if v >= min_logit), reverse=True)
    out = [reason(g, tx, features) for _, g in ranked[:max_reasons]]
    return out or [NO_RISK]


def explain(tx: Transaction, features: Features, contributions: dict[str, float], max_reasons: int = 3,
            min_logit: float = 0.25) -> list[str]:
    """The phrases of :func:`explain_coded`."""
    return phrases(explain_coded(tx, features, contributions, max_reasons, min_logit))


def explain_batch(transactions: Sequence[Transaction], features: Sequence[Features], groups: Sequence[str],
                  contributions: np.ndarray, max_reasons: int = 3, min_logit: float = 0.25) -> list[list[str]]:
    """The phrases of :func:`explain_batch_coded`."""
    return [phrases(row) for row in explain_batch_coded(transactions, features, groups, contributions,
                                                         max_reasons, min_logit)]


def explain_batch_coded(transactions: Sequence[Transaction], features: Sequence[Features], groups: Sequence[str],
                        contributions: np.ndarray, max_reasons: int = 3,
                        min_logit: float = 0.25) -> list[list[Reason]]:
    """:func:`explain_coded` for every row of a (transactions x groups) contribution matrix, with the same
    result row for row, ranked for the whole batch at once: groups below ``min_logit`` drop out, and
    one stable sort over columns ordered by descending group name breaks ties as ``explain``'s
    ``sorted((value, group), reverse=True)`` does."""
    out = [[NO_RISK] for _ in transactions]
    matrix = np.asarray(contributions, dtype=np.float64)
    if not len(groups) or not matrix.size:
        return out
    by_name = sorted(range(len(groups)), key=lambda j: groups[j], reverse=True)
    m = matrix[:, by_name]
    hits = m >= min_logit
    counts = np.minimum(hits.sum(axis=1), max_reasons)
    rows = np.flatnonzero(counts).tolist()
    if not rows:
        return out
    masked = np.where(hits[rows], m[rows], -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :max_reasons].tolist()
    names = [groups[j] for j in by_name]
    for r, ranked, n in zip(rows, order, counts[rows].tolist(), strict=True):
        tx, f = transactions[r], features[r]
        out[r] = [reason(names[j], tx, f) for j in ranked[:n]]
    return out
