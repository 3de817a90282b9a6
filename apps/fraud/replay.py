"""``fraud score``: offline replay of a transaction file through the tiered scorer.

Rules:
- Transactions are replayed in timestamp order through the same
  :class:`~npusuite.fraud.scorer.TieredScorer` (and so the same feature code)
  as the live service, in batches of ``batch_size``.
- ``warmup`` transactions only build account state; they are never scored.
  A transaction id that appears in both files is scored, not warmed up.
- ``states`` may be passed in (and is updated in place), so a replay can be
  resumed from serialised :class:`AccountState` bytes; this is how the tests
  prove that whole and resumed replays agree.
- Output: one fraud-scores record per transaction, plus the optional fields
  ``account_id``, ``card_id`` and ``timestamp`` (used by ``fraud evaluate``
  for daily card precision).  The file is written to a temporary name and
  renamed, so a crash never leaves half a file under the final name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from npusuite.fraud.features import AccountState, advance
from npusuite.fraud.schema import Transaction
from npusuite.fraud.scorer import ScoredTransaction, TieredScorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    scored: int
    warmed_up: int
    decisions: dict[str, int]
    escalated: int
    llm_fallbacks: int


def warm_up(states: dict[str, AccountState], transactions: list[Transaction]) -> None:
    for tx in transactions:
        state = states.get(tx.account_id)
        if state is None:
            state = states[tx.account_id] = AccountState()
        advance(state, tx)


def replay(scorer: TieredScorer, transactions: list[Transaction], states: dict[str, AccountState] | None = None,
           batch_size: int = 256, progress: bool = False) -> list[ScoredTransaction]:
    """Score ``transactions`` (time-ordered) in batches, updating ``states``."""
    states = states if states is not None else {}
    out: list[ScoredTransaction] = []
    bar = tqdm(total=len(transactions), desc="scoring", unit="tx", disable=not progress, mininterval=1.0)
    for start in range(0, len(transactions), batch_size):
        batch = transactions[start:start + batch_size]
        results = scorer.score_batch([(tx, states.get(tx.account_id)) for tx in batch])
        for tx, res in zip(batch, results, strict=True):
            states[tx.account_id] = res.state
        out.extend(results)
        bar.update(len(batch))
    bar.close()
    return out


def score_line(tx: Transaction, res: ScoredTransaction) -> dict:
    line = res.score.model_dump()
    line.update(account_id=tx.account_id, card_id=tx.card_id, timestamp=tx.to_json_dict()["timestamp"])
    return line


def score_file(scorer: TieredScorer, transactions: list[Transaction], out: Path,
               warmup: list[Transaction] | None = None, batch_size: int = 256, progress: bool = True
               ) -> ReplaySummary:
    states: dict[str, AccountState] = {}
    scored_ids = {tx.transaction_id for tx in transactions}
    warm = [tx for tx in (warmup or []) if tx.transaction_id not in scored_ids]
    if warm:
        warm_up(states, warm)
        logger.info("warmed up %d accounts from %d transactions", len(states), len(warm))
    results = replay(scorer, transactions, states, batch_size, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    decisions: dict[str, int] = {}
    with tmp.open("w", encoding="utf-8") as fh:
        for tx, res in zip(transactions, results, strict=True):
            fh.write(json.dumps(score_line(tx, res), separators=(",", ":")) + "\n")
            decisions[res.fields["decision"]] = decisions.get(res.fields["decision"], 0) + 1
    tmp.replace(out)
    summary = ReplaySummary(len(results), len(warm), decisions, sum(r.escalated for r in results),
                            sum(r.llm_fallback for r in results))
    logger.info("scored %d transactions into %s: %s (%d escalated to the LLM, %d fell back)", summary.scored, out,
                decisions, summary.escalated, summary.llm_fallbacks)
    return summary
