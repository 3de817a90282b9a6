"""Recognising the reason code of a reason phrase that arrived without one.

Fraud alerts carry ``reason_codes`` beside their phrases.  Two kinds of reason
have none: rows stored before codes existed (migration 0004 gives them codes
with :func:`code_of_phrase`) and alerts from a scorer that predates codes.

Rules:

- A phrase that is itself a code value (``"llm_unavailable"``,
  ``"amount_spike"``) is that code.
- Otherwise the first pattern below that matches the fraud scorer's wording
  gives the code; the patterns follow the phrases of
  :mod:`npusuite.fraud.reasons` (a test checks that every phrase it writes is
  recognised as its own code).
- Anything else is :attr:`ReasonCode.OTHER`: never an error, so no alert and
  no old row is refused for its wording.
- :func:`codes_for` keeps the codes an alert carries when they are in the
  vocabulary, and recognises the phrase for a code that is missing (an older
  scorer sends none) or unknown (the queue filters only by known codes).
- Migration 0004 imports this module: patterns may be added, never changed
  in meaning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from npusuite.platform.contracts.labels import ReasonCode as C

_PATTERNS: tuple[tuple[re.Pattern[str], C], ...] = tuple((re.compile(p), c) for p, c in (
    (r"^amount .* on an account with no history$", C.AMOUNT_NO_HISTORY),
    (r"^amount \S+x account median", C.AMOUNT_SPIKE),
    (r"^amount unusually small for account", C.AMOUNT_SMALL),
    (r"^amount .* unusual for account", C.AMOUNT_UNUSUAL),
    (r"^\d+ transactions in the previous hour", C.VELOCITY_BURST),
    (r" since previous transaction", C.VELOCITY_GAP),
    (r"^first payment to this payee", C.NEW_PAYEE),
    (r"^first time at this merchant", C.NEW_MERCHANT),
    (r"^card-not-present charge with no device", C.KEYED_NO_DEVICE),
    (r"^(new device|new IP network|device first seen|IP network first seen)", C.NEW_DEVICE),
    (r"^device and network pattern unusual", C.DEVICE_IP_UNUSUAL),
    (r"^first transaction in country", C.NEW_COUNTRY),
    (r"^country \S+ rarely used by account", C.RARE_COUNTRY),
    (r"km from previous card-present payment.*\(impossible travel\)", C.IMPOSSIBLE_TRAVEL),
    (r"km from previous card-present payment", C.GEO_DISTANCE),
    (r"\(card testing( amount)?\)$", C.CARD_TESTING),
    (r"^unusual hour for account", C.UNUSUAL_HOUR),
    (r"^\d+ different merchants within the hour", C.MANY_MERCHANTS),
    (r"^\d+ ATM withdrawals within 24 h", C.ATM_BURST),
    (r"^ATM withdrawal of", C.ATM_WITHDRAWAL),
    (r"^\d+ transfers within the hour", C.TRANSFER_BURST),
    (r"^transfer \S+x the account's largest previous transfer", C.TRANSFER_SPIKE),
    (r"^LLM verdict: fraud", C.LLM_VERDICT_FRAUD),
    (r"^LLM verdict: legitimate", C.LLM_VERDICT_LEGITIMATE),
    (r"^no risk indicators$", C.NO_RISK),
))


def code_of_phrase(phrase: str) -> C:
    """The code PHRASE was written for, or ``other`` when it is not recognisable."""
    try:
        return C(phrase)
    except ValueError:
        pass
    for pattern, code in _PATTERNS:
        if pattern.search(phrase):
            return code
    return C.OTHER


def codes_for(phrases: Sequence[str], codes: Sequence[str]) -> list[str]:
    """One code per phrase: CODES (same order) where known, else the phrase's recognised code."""
    given = list(codes) if len(codes) == len(phrases) else []
    out = []
    for i, phrase in enumerate(phrases):
        code = given[i] if given else None
        out.append(code if code in C.__members__.values() else code_of_phrase(phrase).value)
    return out
