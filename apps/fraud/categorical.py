"""Categorical risk learned from labels: time-safe target encoding of categories and reputations.

The streaming features give each categorical field of a transaction only as a
*key* (:func:`category_keys`: a stable hash bucket of the value, 0 for none),
never as a learned number, because what a category value is worth depends on
the labels a model was trained on.  The fast model carries a risk table per
field (:class:`RiskTable`) and looks each key up inside its forward pass, so
every consumer of the feature rows (offline scoring, the live scorer, the
shadow challenger with its *own* tables) gets the risk its model learned.

Rules:
- Fields: merchant category, country and channel (low cardinality, light
  smoothing) and merchant and device reputation (high cardinality: stronger
  smoothing and a minimum count, below which a value is "unknown", risk 0).
- Risk is the log of the m-estimate's lift over the prior:
  ``log(((fraud + m * prior) / (n + m)) / prior)``; 0 means "no different
  from the average transaction", and an unseen value is exactly 0.
- Never leak future labels.  In training (:func:`time_safe_risk`) a row's
  risk uses only the labels of rows at least ``label_delay_s`` older than it
  (labels arrive late in real life, and a delay keeps an episode's own
  earlier transactions out of its encoding, which serving could never
  supply); the prior is the rate of those known labels too.  The serving
  table (:func:`fit_table`) uses every training label: it is frozen in the
  model at training time, so everything it scores lies after those labels.
- Keys are ``zlib.crc32`` buckets, so no vocabulary has to be shipped and an
  unseen value costs nothing; collisions in the merchant and device tables
  share a reputation (2^18 buckets each; a bank with millions of merchants
  would want more, or exact tables).
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: The fields, in feature order, and the names of their key features.
FIELDS: tuple[str, ...] = ("mcc", "country", "channel", "merchant", "device")
KEY_FEATURES: tuple[str, ...] = tuple(f"{f}_key" for f in FIELDS)


@dataclass(frozen=True)
class FieldSpec:
    buckets: int
    smoothing: float  # m of the m-estimate: labels' weight against the prior
    min_count: int    # fewer labelled transactions than this: risk 0


SPECS: dict[str, FieldSpec] = {
    "mcc": FieldSpec(4096, 50.0, 1), "country": FieldSpec(4096, 50.0, 1), "channel": FieldSpec(64, 50.0, 1),
    "merchant": FieldSpec(1 << 18, 200.0, 20), "device": FieldSpec(1 << 18, 200.0, 20),
}
_SIZES = tuple(SPECS[f].buckets - 1 for f in FIELDS)
#: Offsets of each field's block in the flat table the model carries.
OFFSETS: tuple[int, ...] = tuple(int(v) for v in np.cumsum([0, *(SPECS[f].buckets for f in FIELDS[:-1])]))
TABLE_SIZE = sum(SPECS[f].buckets for f in FIELDS)


@dataclass(frozen=True)
class RiskConfig:
    label_delay_s: float = 86400.0
    specs: tuple[tuple[str, FieldSpec], ...] = tuple(SPECS.items())


def _bucket(value: str | None, size: int) -> float:
    # crc32 is stable across processes (str hash is salted); surrogatepass: JSON may carry lone surrogates.
    return 0.0 if value is None else float(zlib.crc32(value.encode("utf-8", "surrogatepass")) % size + 1)


#: Keys of the small fields, remembered (a dict lookup is a fifth of a crc32); bounded against junk input.
_SMALL_MEMO: dict[tuple[int, str], float] = {}
_SMALL_MEMO_MAX = 10_000


def _small(field: int, value: str, size: int) -> float:
    key = _SMALL_MEMO.get((field, value))
    if key is None:
        key = _bucket(value, size)
        if len(_SMALL_MEMO) < _SMALL_MEMO_MAX:
            _SMALL_MEMO[(field, value)] = key
    return key


def category_keys(merchant_category: str, country: str, channel: str, merchant_id: str,
                  device_id: str | None) -> tuple[float, ...]:
    """The key features of one transaction, in :data:`FIELDS` order (exact in float32)."""
    mcc_n, country_n, channel_n, merchant_n, device_n = _SIZES
    return (_small(0, merchant_category, mcc_n), _small(1, country, country_n), _small(2, channel, channel_n),
            _bucket(merchant_id, merchant_n), _bucket(device_id, device_n))


def _risk(n: float, fraud: float, prior: float, spec: FieldSpec) -> float:
    if n < spec.min_count or prior <= 0.0:
        return 0.0
    return math.log((fraud + spec.smoothing * prior) / (n + spec.smoothing) / prior)


def time_safe_risk(keys: np.ndarray, y: np.ndarray, t: np.ndarray, config: RiskConfig = RiskConfig()) -> np.ndarray:
    """Risk of each row from the labels known before it (see the module rules).

    ``keys``: (n, len(FIELDS)) key features; ``y``: labels; ``t``: epoch seconds, non-decreasing."""
    specs = dict(config.specs)
    counts: list[dict[int, list[float]]] = [{} for _ in FIELDS]
    out = np.zeros(keys.shape, dtype=np.float32)
    ik = keys.astype(np.int64).tolist()
    yl = y.astype(bool).tolist()
    known, known_fraud, j = 0, 0, 0
    ordered_specs = [specs[f] for f in FIELDS]
    for i, ti in enumerate(t.tolist()):
        while j < i and t[j] + config.label_delay_s < ti:  # row j's label is known by now
            for c, key in zip(counts, ik[j], strict=True):
                entry = c.get(key)
                if entry is None:
                    c[key] = entry = [0.0, 0.0]
                entry[0] += 1.0
                entry[1] += yl[j]
            known += 1
            known_fraud += yl[j]
            j += 1
        prior = (known_fraud + 1.0) / (known + 2.0)
        for f, (c, key, spec) in enumerate(zip(counts, ik[i], ordered_specs, strict=True)):
            entry = c.get(key)
            if entry is not None and key != 0:
                out[i, f] = _risk(entry[0], entry[1], prior, spec)
    return out


@dataclass
class RiskTable:
    """The serving table: one flat float32 array (field blocks at :data:`OFFSETS`) and what the card says."""

    table: np.ndarray
    card: dict


def fit_table(keys: np.ndarray, y: np.ndarray, raw: dict[str, list[str | None]] | None = None,
              config: RiskConfig = RiskConfig()) -> RiskTable:
    """The table from every training label.  ``raw``: the fields' values per row, to name the values
    of the small fields (and the riskiest merchants and devices) in the card."""
    specs = dict(config.specs)
    y = y.astype(bool)
    prior = (float(y.sum()) + 1.0) / (len(y) + 2.0)
    table = np.zeros(TABLE_SIZE, dtype=np.float32)
    card: dict = {"encoding": "log lift of the m-estimate over the prior; 0 = unknown or average",
                  "label_delay_s_in_training": config.label_delay_s, "prior": round(prior, 6), "fields": {}}
    for f, field in enumerate(FIELDS):
        spec = specs[field]
        k = keys[:, f].astype(np.int64)
        n = np.bincount(k, minlength=spec.buckets)[:spec.buckets].astype(float)
        fraud = np.bincount(k, weights=y.astype(float), minlength=spec.buckets)[:spec.buckets]
        block = np.where(n >= spec.min_count, np.log((fraud + spec.smoothing * prior) / (n + spec.smoothing) / prior),
                         0.0)
        block[0] = 0.0  # "none" (no device) is not a value with a reputation
        table[OFFSETS[f]:OFFSETS[f] + spec.buckets] = block
        entry = {"buckets": spec.buckets, "smoothing": spec.smoothing, "min_count": spec.min_count,
                 "values_with_risk": int((block != 0).sum())}
        if raw is not None:
            entry["values"] = _named(raw[field], k, block, n, fraud, top=None if spec.buckets <= 4096 else 10)
        card["fields"][field] = entry
    logger.info("categorical risk from %d labels (prior %.5f): %s", len(y), prior,
                {f: e["values_with_risk"] for f, e in card["fields"].items()})
    return RiskTable(table, card)


def _named(values: list[str | None], k: np.ndarray, block: np.ndarray, n: np.ndarray, fraud: np.ndarray,
           top: int | None) -> list[dict]:
    """Per raw value: its transactions, frauds and risk (all of them, or the ``top`` riskiest)."""
    key_of = {v: int(key) for v, key in zip(values, k.tolist(), strict=True) if v is not None}
    rows = [{"value": v, "n": int(n[key]), "fraud": int(fraud[key]), "risk": round(float(block[key]), 4)}
            for v, key in key_of.items()]
    rows.sort(key=lambda r: (-r["risk"], r["value"]))
    return rows if top is None else [r for r in rows if r["risk"] > 0][:top]


def raw_fields(transactions) -> dict[str, list[str | None]]:
    """The categorical values of each transaction, per field (for :func:`fit_table`'s card)."""
    return {"mcc": [tx.merchant_category for tx in transactions], "country": [tx.country for tx in transactions],
            "channel": [tx.channel for tx in transactions], "merchant": [tx.merchant_id for tx in transactions],
            "device": [tx.device_id for tx in transactions]}


def summary(card: dict) -> dict[str, int]:
    """How many values of each field carry a learned risk (for logs and reports)."""
    return {f: e["values_with_risk"] for f, e in card.get("fields", {}).items()}
