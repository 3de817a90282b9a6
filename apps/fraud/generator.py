"""``fraud generate``: a deterministic, labelled stream of card and transfer transactions.

Rules:
- The output is a pure function of :class:`GeneratorConfig`: the same seed,
  accounts, days and fraud rate give byte-identical files.
- ``transactions.jsonl`` is sorted by timestamp (ties by account, then
  merchant), one Transaction object per line; ``labels.jsonl`` has one
  ``{"transaction_id", "is_fraud", "fraud_type"}`` line per transaction, in the
  same order; ``fraud_type`` is a
  :class:`~npusuite.platform.contracts.labels.FraudTypology` value (never
  ``other``) or null.
- Genuine activity comes from :mod:`npusuite.fraud.personas`, fraud episodes
  from :mod:`npusuite.fraud.typologies`.  Episodes are added until fraudulent
  transactions make up ``fraud_rate`` of the stream, split between typologies
  by :data:`~npusuite.fraud.typologies.TYPOLOGY_SHARE`.  An account is the
  victim of at most one episode while unused accounts remain.
- Customers also join mid-stream (:data:`JOINER_SHARE` of ``accounts``, on
  top of them): genuine accounts whose activity starts on their opening day,
  so that a young account is not a sign of fraud in itself.  A
  ``synthetic_identity`` episode is a made-up customer of the same kind whose
  quiet build-up is labelled genuine and whose bust-out is fraud.  A
  ``dormant_bust_out`` victim's genuine activity stops for a quiet spell
  before the spree and does not come back.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from npusuite.fraud import typologies as ty
from npusuite.fraud.personas import DAY_S, Persona, genuine_activity, make_persona
from npusuite.fraud.world import build_world
from npusuite.platform.contracts.labels import FraudTypology

logger = logging.getLogger(__name__)

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
#: Genuine customers who open an account during the stream, as a share of ``accounts``.
JOINER_SHARE = 0.04


@dataclass(frozen=True)
class GeneratorConfig:
    accounts: int = 1000
    days: int = 30
    seed: int = 0
    fraud_rate: float = 0.003
    start: datetime = DEFAULT_START

    def __post_init__(self) -> None:
        if self.accounts < 10:
            raise ValueError("accounts must be at least 10")
        if self.days < 2:
            raise ValueError("days must be at least 2")
        if not 0.0 <= self.fraud_rate < 0.5:
            raise ValueError("fraud_rate must be in [0, 0.5)")


@dataclass(frozen=True)
class GenerateSummary:
    transactions: int
    frauds: int
    by_type: dict[str, int]


def format_timestamp(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(config: GeneratorConfig, progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Returns (transactions, labels) as JSON-ready dicts, time-ordered."""
    rng = np.random.default_rng(config.seed)
    world = build_world(rng)
    start_epoch = config.start.timestamp()
    end_epoch = start_epoch + config.days * DAY_S
    personas: list[Persona] = [make_persona(rng, world, i, config.days) for i in range(config.accounts)]
    genuine: dict[str, list[dict]] = {}
    for p in tqdm(personas, desc="accounts", unit="acct", disable=not progress):
        genuine[p.account_id] = genuine_activity(rng, world, p, start_epoch, config.start.weekday(), config.days)
    n_genuine = sum(len(v) for v in genuine.values())
    target = config.fraud_rate / (1.0 - config.fraud_rate) * n_genuine
    fraud_events: list[dict] = []
    extra_genuine: list[dict] = []
    order = list(rng.permutation(len(personas)))
    used: set[int] = set()

    def victim() -> Persona:
        free = [i for i in order if i not in used]
        i = int(free[0]) if free else int(rng.integers(len(personas)))
        used.add(i)
        return personas[i]

    n_joiners = max(1, round(JOINER_SHARE * config.accounts))
    joiners = [make_persona(rng, world, config.accounts + k, config.days) for k in range(n_joiners)]
    for p in joiners:
        opened = start_epoch + float(rng.uniform(1, config.days)) * DAY_S
        activity = genuine_activity(rng, world, p, start_epoch, config.start.weekday(), config.days)
        genuine[p.account_id] = [e for e in activity if e["_t"] >= opened]
    next_index = config.accounts + n_joiners

    for kind in ty.TYPOLOGIES:
        goal = target * ty.TYPOLOGY_SHARE[kind]
        made = 0
        while made < goal:
            t0 = ty.episode_start(rng, start_epoch, config.days)
            if kind == "merchant_bust_out":
                victims = [victim() for _ in range(int(rng.integers(4, 12)))]
                bystanders = [personas[int(i)] for i in rng.choice(len(personas), size=int(rng.integers(8, 25)))]
                events = ty.merchant_bust_out(rng, world, victims, bystanders, t0)
                extra_genuine.extend(e for e in events if e["fraud_type"] is None)
                events = [e for e in events if e["fraud_type"] is not None]
            elif kind == "cloned_card":
                p = victim()
                events = ty.cloned_card(rng, world, p, ty.anchor_after_card_present(
                    rng, genuine[p.account_id], start_epoch, config.days))
            elif kind == "dormant_bust_out":
                p = victim()
                # Sprees spread over the whole stream like the other typologies; early ones get a shorter
                # quiet spell (at least a day, after at least two days of history).
                day = float(rng.uniform(min(5.0, config.days - 1.0), config.days))
                quiet_days = max(1.0, min(float(rng.integers(*ty.DORMANT_DAYS)), day - 2.0))
                t0 = start_epoch + day * DAY_S
                quiet_from = t0 - quiet_days * DAY_S  # silent from here on: dormant, then gone after the spree
                genuine[p.account_id] = [e for e in genuine[p.account_id] if e["_t"] < quiet_from]
                events = ty.dormant_bust_out(rng, world, p, t0)
            elif kind == "synthetic_identity":
                p = make_persona(rng, world, next_index, config.days)
                next_index += 1
                opened = start_epoch + float(rng.uniform(0.5, max(1.0, config.days - 8))) * DAY_S
                t0 = opened + float(rng.uniform(5, 21)) * DAY_S
                activity = genuine_activity(rng, world, p, start_epoch, config.start.weekday(), config.days)
                extra_genuine.extend(e for e in activity if opened <= e["_t"] < t0)  # the build-up
                events = ty.synthetic_identity(rng, world, p, t0)
            else:
                p = victim()
                events = getattr(ty, kind)(rng, world, p, t0)
            events = [e for e in events if e["_t"] < end_epoch]
            fraud_events.extend(events)
            made += len(events) or 1  # an episode past the end still counts, so short streams terminate
    everything = [e for evs in genuine.values() for e in evs] + extra_genuine + fraud_events
    everything = [e for e in everything if start_epoch <= e["_t"] < end_epoch]
    for e in everything:
        e["_t"] = round(e["_t"], 6)
    everything.sort(key=lambda e: (e["_t"], e["account_id"], e["merchant_id"], e["amount"]))
    transactions, labels = [], []
    for i, e in enumerate(everything):
        tx_id = f"tx{config.seed:03d}-{i:08d}"
        kind = e.pop("fraud_type")
        fraud_type = None if kind is None else FraudTypology(kind).value  # plain strings in files and summaries
        t = e.pop("_t")
        transactions.append({"transaction_id": tx_id, "timestamp": format_timestamp(t), **e})
        labels.append({"transaction_id": tx_id, "is_fraud": fraud_type is not None, "fraud_type": fraud_type})
    return transactions, labels


def write(out_dir: Path, config: GeneratorConfig, progress: bool = True) -> GenerateSummary:
    """Generate and write ``transactions.jsonl`` and ``labels.jsonl`` under ``out_dir``."""
    transactions, labels = generate(config, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("transactions.jsonl", transactions), ("labels.jsonl", labels)):
        tmp = out_dir / (name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, separators=(",", ":")) + "\n")
        tmp.replace(out_dir / name)
    by_type = Counter(lab["fraud_type"] for lab in labels if lab["is_fraud"])
    summary = GenerateSummary(len(transactions), sum(by_type.values()), dict(sorted(by_type.items())))
    logger.info("wrote %d transactions (%d fraudulent, %.3f%%) to %s: %s", summary.transactions, summary.frauds,
                100.0 * summary.frauds / max(1, summary.transactions), out_dir, summary.by_type)
    return summary
