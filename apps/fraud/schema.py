"""The fraud app's records, re-exported from their wire-format modules.

The records and their validation rules live in
:mod:`npusuite.platform.contracts.transaction` (``Transaction``, ``Label``,
:func:`parse_transaction`, :func:`parse_label`) and
:mod:`npusuite.platform.contracts.score` (``FraudScore``); ``docs/contracts.md``
describes every topic.  This module keeps the names the fraud app has always
imported, so producers and consumers use the same classes.
"""

from __future__ import annotations

from npusuite.platform.contracts.score import Decision, FraudScore
from npusuite.platform.contracts.transaction import (
    MAX_ID_CHARS,
    MAX_IP_CHARS,
    MAX_TRANSACTION_BYTES,
    Channel,
    Label,
    Transaction,
    parse_label,
    parse_transaction,
)
from npusuite.platform.errors import SchemaError

__all__ = ["MAX_ID_CHARS", "MAX_IP_CHARS", "MAX_TRANSACTION_BYTES", "Channel", "Decision", "FraudScore", "Label",
           "SchemaError", "Transaction", "parse_label", "parse_transaction"]
