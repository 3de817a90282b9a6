"""``python poisoned_scorer.py ARGS``: ``npusuite fraud run ARGS`` whose model raises on one kind of record.

A fault injected for the poison-isolation test: a batch holding a transaction with merchant_id
:data:`POISON_MERCHANT` first advances (in place) the account states of every transaction before it,
as the real scorer does, then raises ZeroDivisionError, so the batch fails with its accounts
half-updated.  Everything else is the real service: Kafka, the changelog, the trained model.
"""

from __future__ import annotations

import runpy
import sys

import npusuite.fraud.service.scoring as scoring

POISON_MERCHANT = "POISON-MERCHANT"
_build = scoring.build_live_scorer


def _poisoned(config, metrics=None):
    scorer = _build(config, metrics)
    real = scorer.score_batch

    def score_batch(requests):
        for i, r in enumerate(requests):
            if r.transaction.merchant_id == POISON_MERCHANT:
                real(requests[:i])  # the states before it move on, then the batch fails
                raise ZeroDivisionError(f"injected poison in {r.transaction.transaction_id}")
        return real(requests)

    scorer.score_batch = score_batch
    return scorer


if __name__ == "__main__":
    scoring.build_live_scorer = _poisoned  # command.run imports it from the module when it runs
    sys.argv[0] = "npusuite.fraud.service"
    runpy.run_module("npusuite.fraud.service", run_name="__main__", alter_sys=True)
