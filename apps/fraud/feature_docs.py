"""The fraud features in people's words: a name, the value in its unit, and whether it stands out.

One entry per name of :data:`npusuite.fraud.features.FEATURE_NAMES`, inverting
how :mod:`npusuite.fraud.features` computes it (``*_log`` ages and counts are
``log1p`` of seconds or counts, ``*_to_*_log`` are logs of ratios,
``hour_unusual`` is ``-log`` of a probability), so an analyst reads "device
first seen 2 min ago", not ``device_age_log 4.852``.  Pure functions; the
review app shows them, nothing here changes a score.

A value the features cannot produce still renders (as the raw number beside
the name), and names this module does not know are shown raw: an alert from
a model with other features must still be readable.  ``tests`` check every
feature name has an entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from npusuite.fraud.features import CARD_TESTING_WINDOW_S, FEATURE_NAMES, FRESH_S, SMALL_ECOM_AMOUNT


def duration(seconds: float) -> str:
    """'45 s', '2 min', '3.5 h', '12 d'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def _expm1(v: float) -> float:
    return math.expm1(min(v, 700.0))


def _exp(v: float) -> float:
    return math.exp(max(min(v, 700.0), -700.0))


def _yes(v: float) -> bool:
    return v >= 0.5


def _count(v: float) -> int:
    return round(_expm1(v))


@dataclass(frozen=True)
class Spec:
    label: str
    #: value -> text in the feature's unit
    text: Callable[[float], str]
    #: value -> True when it stands out (shown first)
    notable: Callable[[float], bool] = lambda _v: False


def _flag(yes: str, no: str) -> Spec:
    return Spec(yes.split(":")[0] if ":" in yes else yes, lambda v: yes if _yes(v) else no, _yes)


def _age(what: str) -> Spec:
    def text(v: float) -> str:
        return f"{what} first seen {duration(_expm1(v))} ago" if v > 0 else f"{what} new to this account (or none)"
    return Spec(f"{what} age", text, lambda v: 0 < _expm1(v) < FRESH_S)


def _counted(label: str, span: str) -> Spec:
    return Spec(label, lambda v: f"{_count(v)} transaction(s) in the last {span}")


def _summed(span: str) -> Spec:
    return Spec(f"spent in {span}", lambda v: f"{_expm1(v):,.2f} spent in the last {span}")


def _ratio(what: str) -> Spec:
    return Spec(what, lambda v: f"{_exp(v):.1f}× {what}", lambda v: _exp(v) >= 3.0)


_SMALL = f"small online payments (≤ {SMALL_ECOM_AMOUNT:g})"
_TEN_MIN = duration(CARD_TESTING_WINDOW_S)

SPECS: dict[str, Spec] = {
    "log_amount": Spec("amount", lambda v: f"amount {_exp(v):,.2f}"),
    "amount_z": Spec("amount vs usual", lambda v: f"amount {v:+.1f} σ from the account's usual",
                     lambda v: abs(v) >= 3.0),
    "amount_to_max_log": _ratio("the account's largest amount"),
    "amount_to_median_log": _ratio("the account's median amount"),
    "log_history": Spec("history", lambda v: f"{_count(v)} earlier transaction(s) on the account",
                        lambda v: _count(v) < 3),
    "cnt_1m": _counted("count 1 min", "minute"),
    "cnt_1h": _counted("count 1 h", "hour"),
    "cnt_24h": _counted("count 24 h", "24 h"),
    "cnt_7d": _counted("count 7 d", "7 days"),
    "sum_1m": _summed("minute"),
    "sum_1h": _summed("hour"),
    "sum_24h": _summed("24 h"),
    "sum_7d": _summed("7 days"),
    "new_merchant": _flag("new merchant for this account", "merchant used before"),
    "new_device": _flag("new device for this account", "device seen before (or none)"),
    "new_country": _flag("new country for this account", "country seen before"),
    "new_mcc": _flag("new merchant category for this account", "merchant category seen before"),
    "new_ip_net": _flag("new IP network for this account", "IP network seen before (or none)"),
    "merchant_seen_log": Spec("merchant history", lambda v: f"merchant used {_count(v)} time(s) before"),
    "has_device": _flag("device id present", "no device id"),
    "device_age_log": _age("device"),
    "has_ip": _flag("IP address present", "no IP address"),
    "ip_net_age_log": _age("IP network"),
    "country_share": Spec("country share", lambda v: f"{v:.0%} of the account's payments in this country",
                          lambda v: v < 0.05),
    "since_prev_log": Spec("since previous",
                           lambda v: f"{duration(_expm1(v))} since the previous transaction" if v > 0
                           else "no time since the previous transaction",
                           lambda v: _expm1(v) < 60),
    "geo_km_log": Spec("distance", lambda v: f"{_expm1(v):,.0f} km from the last card-present payment",
                       lambda v: _expm1(v) >= 500),
    "geo_speed_log": Spec("travel speed", lambda v: f"{_expm1(v):,.0f} km/h implied travel speed",
                          lambda v: _expm1(v) >= 900),
    "small_ecom_10m": Spec("card testing", lambda v: f"{v:.0f} {_SMALL} in {_TEN_MIN}", lambda v: v >= 3),
    "small_ecom_merchants_10m": Spec("card testing merchants",
                                     lambda v: f"{v:.0f} merchant(s) among {_SMALL} in {_TEN_MIN}",
                                     lambda v: v >= 3),
    "hour_unusual": Spec("hour of day", lambda v: f"this hour of day: {_exp(-v):.1%} of the account's habit",
                         lambda v: _exp(-v) < 0.02),
    "distinct_merchants_1h": Spec("merchants 1 h", lambda v: f"{v:.0f} distinct merchant(s) in the last hour",
                                  lambda v: v >= 4),
    "atm_cnt_24h": Spec("ATM 24 h", lambda v: f"{v:.0f} ATM withdrawal(s) in 24 h", lambda v: v >= 3),
    "atm_sum_24h": Spec("ATM sum 24 h", lambda v: f"{_expm1(v):,.2f} withdrawn at ATMs in 24 h"),
    "transfer_cnt_1h": Spec("transfers 1 h", lambda v: f"{v:.0f} transfer(s) in the last hour", lambda v: v >= 3),
    "transfer_to_max_log": _ratio("the account's largest transfer"),
    "no_device_ecommerce": _flag("online payment without a device id", "not a device-less online payment"),
    "ch_card_present": _flag("channel: card present", "not card present"),
    "ch_ecommerce": _flag("channel: online", "not online"),
    "ch_atm": _flag("channel: ATM", "not ATM"),
    "ch_transfer": _flag("channel: transfer", "not a transfer"),
    "unfamiliar_access": _flag("new device and new network within the hour", "familiar device or network"),
    "small_ecom_unfamiliar": Spec("card testing, unfamiliar access",
                                  lambda v: f"{v:.0f} {_SMALL} from a new device and network", lambda v: v >= 1),
    # Keys of categorical fields: the fast model turns them into the risk it learned (npusuite.fraud.categorical).
    **{f"{field}_key": Spec(f"{words} (learned risk)",
                            lambda v, w=words: f"{w}: key {v:.0f}, risk looked up by the model")
       for field, words in (("mcc", "merchant category"), ("country", "country"), ("channel", "channel"),
                            ("merchant", "merchant reputation"), ("device", "device reputation"))},
}
#: The channel one-hots say the same thing as the transaction's channel: listed only among all features.
_REDUNDANT = frozenset({"ch_card_present", "ch_ecommerce", "ch_atm", "ch_transfer", "log_amount", "mcc_key",
                        "country_key", "channel_key", "merchant_key", "device_key"})


@dataclass(frozen=True)
class FeatureText:
    name: str
    label: str
    text: str
    value: float
    notable: bool


def describe(name: str, value: float) -> FeatureText:
    spec = SPECS.get(name)
    if spec is None:
        return FeatureText(name, name, f"{name} = {value:.4g}", value, False)
    try:
        return FeatureText(name, spec.label, spec.text(value), value, bool(spec.notable(value)))
    except (ValueError, OverflowError):  # a value the features cannot produce: show it as it came
        return FeatureText(name, spec.label, f"{name} = {value:.4g}", value, False)


def describe_all(features: Mapping[str, float]) -> list[FeatureText]:
    """Every feature, notable ones first (each group in the features' own order)."""
    order = {n: i for i, n in enumerate(FEATURE_NAMES)}
    items = sorted((describe(n, v) for n, v in features.items()), key=lambda f: order.get(f.name, len(order)))
    return [f for f in items if f.notable] + [f for f in items if not f.notable]


def headline(features: Mapping[str, float], n: int = 10) -> list[FeatureText]:
    """What an analyst reads first: notable features, then the rest, without the redundant ones."""
    return [f for f in describe_all(features) if f.name not in _REDUNDANT][:n]
