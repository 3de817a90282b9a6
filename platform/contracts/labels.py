"""The suite's label vocabulary: fraud typologies, defect kinds and reason codes, one source each.

Rules:

- :class:`FraudTypology` holds the eight typologies the transaction generator
  produces and the fraud models are trained on, plus :attr:`FraudTypology.OTHER`
  for confirmed fraud that fits none of them (analysts only; the generator
  never writes it).  "Not fraud" is not a typology: it is ``is_fraud: false``
  with no type.
- :class:`DefectKind` holds every defect kind the inspection generator draws
  (the union over products), plus :attr:`DefectKind.OTHER` for a confirmed
  defect QC cannot name.
- :class:`ReasonCode` is the stable code of each kind of reason the fraud
  scorer gives.  The phrase an alert carries quotes the transaction's numbers
  and changes with them; the code does not, so the review queue filters by
  code and shows the code's :attr:`~ReasonCode.label`.
- Every member has a human ``label`` for forms and filter menus; the value
  (``card_testing``) is what is stored, exported and trained on.
- :func:`parse_typology` / :func:`parse_defect_kind` refuse anything outside
  the vocabulary with a ``ValueError`` naming the choices; callers turn it
  into their own refusal (a 400, a one-line CLI error, a dead letter).

Nothing here does I/O; the enums are ``StrEnum``, so a member compares equal
to, and formats as, its value.
"""

from __future__ import annotations

from enum import StrEnum


class _Labelled(StrEnum):
    """A StrEnum whose members carry a human label (looked up in the subclass's ``_LABELS``)."""

    @property
    def label(self) -> str:
        return _LABELS[type(self).__name__][self.value]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """``(value, label)`` for every member, in declaration order (form options)."""
        return [(m.value, m.label) for m in cls]


class FraudTypology(_Labelled):
    CARD_TESTING = "card_testing"
    ACCOUNT_TAKEOVER = "account_takeover"
    CLONED_CARD = "cloned_card"
    ATM_CASHOUT = "atm_cashout"
    MERCHANT_BUST_OUT = "merchant_bust_out"
    DORMANT_BUST_OUT = "dormant_bust_out"
    SYNTHETIC_IDENTITY = "synthetic_identity"
    APP_SCAM = "app_scam"
    OTHER = "other"


#: The typologies the generator draws (and the models learn from generated data): all but OTHER.
GENERATED_TYPOLOGIES: tuple[FraudTypology, ...] = tuple(t for t in FraudTypology if t is not FraudTypology.OTHER)


class DefectKind(_Labelled):
    STAIN = "stain"
    SCRATCH = "scratch"
    HOLE = "hole"
    THREAD = "thread"
    CRACK = "crack"
    MISPRINT = "misprint"
    CHIP = "chip"
    DENT = "dent"
    MISSING = "missing"
    CONTAMINATION = "contamination"
    OTHER = "other"


class ReasonCode(_Labelled):
    AMOUNT_NO_HISTORY = "amount_no_history"
    AMOUNT_SPIKE = "amount_spike"
    AMOUNT_SMALL = "amount_small"
    AMOUNT_UNUSUAL = "amount_unusual"
    VELOCITY_BURST = "velocity_burst"
    VELOCITY_GAP = "velocity_gap"
    NEW_PAYEE = "new_payee"
    NEW_MERCHANT = "new_merchant"
    KEYED_NO_DEVICE = "keyed_no_device"
    NEW_DEVICE = "new_device"
    DEVICE_IP_UNUSUAL = "device_ip_unusual"
    NEW_COUNTRY = "new_country"
    RARE_COUNTRY = "rare_country"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    GEO_DISTANCE = "geo_distance"
    CARD_TESTING = "card_testing"
    UNUSUAL_HOUR = "unusual_hour"
    MANY_MERCHANTS = "many_merchants"
    ATM_BURST = "atm_burst"
    ATM_WITHDRAWAL = "atm_withdrawal"
    TRANSFER_BURST = "transfer_burst"
    TRANSFER_SPIKE = "transfer_spike"
    LLM_VERDICT_FRAUD = "llm_verdict_fraud"
    LLM_VERDICT_LEGITIMATE = "llm_verdict_legitimate"
    LLM_UNAVAILABLE = "llm_unavailable"
    NO_RISK = "no_risk"
    #: An analyst's rule fired (``npusuite fraud rules``); the phrase names the rule and its condition.
    RULE_HIT = "rule_hit"
    #: The novelty tier: behaviour far from the account's history and from legitimate behaviour.
    NOVELTY = "novelty"
    #: A reason the vocabulary has no code for (a phrase from an older scorer, another model's group).
    OTHER = "other"


_LABELS: dict[str, dict[str, str]] = {
    "FraudTypology": {
        "card_testing": "Card testing", "account_takeover": "Account takeover", "cloned_card": "Cloned card",
        "atm_cashout": "ATM cash-out", "merchant_bust_out": "Merchant bust-out",
        "dormant_bust_out": "Bust-out after a dormant period", "synthetic_identity": "Synthetic identity",
        "app_scam": "Authorised push payment scam",
        "other": "Other fraud (none of the above)",
    },
    "DefectKind": {
        "stain": "Stain", "scratch": "Scratch", "hole": "Hole", "thread": "Loose thread", "crack": "Crack",
        "misprint": "Misprint", "chip": "Chipped edge", "dent": "Dent", "missing": "Missing part",
        "contamination": "Contamination", "other": "Other defect",
    },
    "ReasonCode": {
        "amount_no_history": "amount on an account with no history",
        "amount_spike": "amount far above the account's median",
        "amount_small": "amount unusually small for the account",
        "amount_unusual": "amount unusual for the account",
        "velocity_burst": "several transactions within the hour",
        "velocity_gap": "unusual time since the previous transaction",
        "new_payee": "first payment to this payee",
        "new_merchant": "first time at this merchant",
        "keyed_no_device": "card-not-present charge with no device or IP",
        "new_device": "new or recently seen device or IP network",
        "device_ip_unusual": "device and network pattern unusual for the account",
        "new_country": "first transaction in this country",
        "rare_country": "country rarely used by the account",
        "impossible_travel": "impossible travel from the previous card-present payment",
        "geo_distance": "far from the previous card-present payment",
        "card_testing": "small online payments (card testing)",
        "unusual_hour": "unusual hour for the account",
        "many_merchants": "many different merchants within the hour",
        "atm_burst": "several ATM withdrawals within 24 h",
        "atm_withdrawal": "ATM withdrawal",
        "transfer_burst": "several transfers within the hour",
        "transfer_spike": "transfer far above the account's largest",
        "llm_verdict_fraud": "LLM verdict: fraud",
        "llm_verdict_legitimate": "LLM verdict: legitimate",
        "llm_unavailable": "LLM verdict model unavailable (fast model decided)",
        "no_risk": "no risk indicators",
        "rule_hit": "an analyst's rule fired",
        "novelty": "behaviour unlike the account's history and legitimate behaviour (novelty)",
        "other": "other reason",
    },
}


def _parse(kind: type[_Labelled], what: str, value: str) -> _Labelled:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(m.value for m in kind)}") from None


def parse_typology(value: str) -> FraudTypology:
    """Raises ValueError naming the typologies when VALUE is not one."""
    return _parse(FraudTypology, "fraud type", value)  # type: ignore[return-value]


def parse_defect_kind(value: str) -> DefectKind:
    """Raises ValueError naming the defect kinds when VALUE is not one."""
    return _parse(DefectKind, "defect type", value)  # type: ignore[return-value]
