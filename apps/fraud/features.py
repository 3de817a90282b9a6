"""Streaming features: one pure module shared by training, offline scoring and the live service.

Rules:
- All state is per account, in :class:`AccountState`, and nothing else is
  remembered between transactions.  ``AccountState.to_bytes()`` /
  ``AccountState.from_bytes()`` round-trip exactly (floats survive as their
  shortest repr), so replaying a stream whole or resuming it midway from a
  serialised state gives bit-identical features.
- :func:`step` is pure: ``(state, transaction) -> (features, new_state)``; the
  input state is never changed.  :func:`advance` is the same computation
  updating the state in place (for fast offline replay) and returns the
  features; both share one code path.
- Features of a transaction are computed from the state *before* it, then the
  transaction is folded in, so a transaction never sees itself (except the
  card-testing and distinct-merchant counts, which count it on purpose).
- State is bounded: the time window keeps 7 days (at most
  :data:`MAX_WINDOW` entries), the first-seen tables at most
  :data:`MAX_SEEN` keys each (oldest dropped first).
- Transactions for one account must come in timestamp order; an earlier
  timestamp is treated as "no time passed" rather than rejected (its window
  entry takes the newest time before it).
- Total: any transaction :func:`~npusuite.fraud.schema.parse_transaction`
  accepts gives finite features and a state that keeps giving them, however
  extreme (amounts from 5e-324 to 1.8e308, timestamps from year 1 to 9999,
  gaps of millennia).  Amounts enter the state clamped to
  [:data:`MIN_AMOUNT`, :data:`MAX_AMOUNT`], so logs, ratios and 1000-entry
  sums stay finite; ratios of amounts are taken through :func:`_log_ratio`,
  which also copes with states written before the clamp.  Real amounts lie
  well inside the bounds, so the features of real data do not change.
- Categorical fields (merchant category, country, channel, merchant,
  device) also enter as *keys* (:func:`~npusuite.fraud.categorical.category_keys`,
  the last features): hash buckets that the fast model turns into the risk it
  learned from labels (:mod:`npusuite.fraud.categorical`); nothing learned
  lives here.
- The window is kept sorted by time, so each span (1 min to 7 days) is a
  suffix of it, found by bisection: the cost per transaction grows with the
  log of the window, not its length (accounts with thousands of weekly
  payments are common in business banking).
- History rows: the state also remembers the feature rows of the account's
  last :data:`HISTORY_ROWS` (8) transactions, the input of the sequence
  novelty model (a GRU over the previous rows,
  :mod:`npusuite.fraud.novelty_sequence`).  A row is the first
  :data:`HISTORY_WIDTH` (42) features (everything before the category
  keys) as little-endian float32, and ``AccountState.history`` is their
  bytes, oldest first: at most 8 x 42 x 4 = 1,344 bytes per account (about
  1.8 KB more per snapshot in base64).  :func:`advance` appends the row it
  just returned (after the update, so it is part of the state *after* the
  transaction) and keeps the last 8, so :func:`step`, replay and restore keep
  it too.  The features never read it: they are unchanged.
  :meth:`AccountState.recent_rows` gives it as a (k, 42) array and
  :func:`history_block` stacks a batch of them (their bytes) for the model.
- Snapshot format (:data:`STATE_VERSION` 2): ``to_bytes`` is one JSON object,
  ``"v"`` then the fields in declaration order, ``"history"`` last as
  standard base64 (with padding) of the history bytes.  ``from_bytes`` also
  reads version 1 (the same object without ``"history"``: an empty history)
  and refuses, with SchemaError, a history that is not base64 of whole rows
  or holds more than 8.  Any float32 value is kept: a row is the float32
  cast of the features (a finite value beyond float32 becomes infinite, as
  numpy's cast; only states written before amounts were clamped give one),
  so a state the scorer wrote always restores; the sequence model sanitises
  what it reads (:func:`~npusuite.fraud.novelty_sequence.live_scores`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from pydantic_core import to_json

from npusuite.fraud.categorical import KEY_FEATURES, category_keys
from npusuite.fraud.schema import Transaction
from npusuite.fraud.world import haversine_km
from npusuite.platform.errors import SchemaError

#: Version of the snapshot format :meth:`AccountState.to_bytes` writes (1: no ``history``, still read).
STATE_VERSION = 2
_READABLE_VERSIONS = (1, STATE_VERSION)
MAX_WINDOW = 1000
MAX_SEEN = 400
WINDOWS_S = {"1m": 60.0, "1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
CARD_TESTING_WINDOW_S = 600.0
SMALL_ECOM_AMOUNT = 5.0
NO_HISTORY_S = 30 * 86400.0
FRESH_S = 3600.0
CHANNELS = ("card_present", "ecommerce", "atm", "transfer")
#: Amounts are clamped to this range before they touch the features or the state (the schema accepts
#: any finite amount > 0): 1e-9 is below any currency's smallest unit, 1e15 above any real payment,
#: and 1000 window entries of 1e15 still sum to a finite number.
MIN_AMOUNT = 1e-9
MAX_AMOUNT = 1e15
#: log of the largest / smallest ratio of two clamped amounts.
_MAX_LOG_RATIO = math.log(MAX_AMOUNT / MIN_AMOUNT)
_INF = math.inf

FEATURE_NAMES: tuple[str, ...] = (
    "log_amount", "amount_z", "amount_to_max_log", "amount_to_median_log", "log_history",
    "cnt_1m", "cnt_1h", "cnt_24h", "cnt_7d", "sum_1m", "sum_1h", "sum_24h", "sum_7d",
    "new_merchant", "new_device", "new_country", "new_mcc", "new_ip_net",
    "merchant_seen_log", "has_device", "device_age_log", "has_ip", "ip_net_age_log", "country_share",
    "since_prev_log", "geo_km_log", "geo_speed_log", "small_ecom_10m", "small_ecom_merchants_10m",
    "hour_unusual", "distinct_merchants_1h", "atm_cnt_24h", "atm_sum_24h", "transfer_cnt_1h",
    "transfer_to_max_log", "no_device_ecommerce",
    "ch_card_present", "ch_ecommerce", "ch_atm", "ch_transfer",
    "unfamiliar_access", "small_ecom_unfamiliar",
    *KEY_FEATURES,
)
N_FEATURES = len(FEATURE_NAMES)
#: Feature rows the state remembers (the sequence novelty model's input), and the width of one: the features
#: before the category keys.
HISTORY_ROWS = 8
HISTORY_WIDTH = 42
assert FEATURE_NAMES[HISTORY_WIDTH:] == KEY_FEATURES
#: Bytes of one remembered row (little-endian float32) and of a full history.
HISTORY_ROW_BYTES = HISTORY_WIDTH * 4
HISTORY_BYTES = HISTORY_ROWS * HISTORY_ROW_BYTES
#: One row -> its bytes: the C cast of each double to float (round to nearest even), as numpy's ``astype``.
_HISTORY_ROW = struct.Struct(f"<{HISTORY_WIDTH}f")
_HISTORY_DTYPE = np.dtype("<f4")
_ONE_F32 = struct.Struct("<f")


@dataclass
class AccountState:
    """Everything the feature code remembers about one account."""

    n: int = 0
    mean_log: float = 0.0
    m2_log: float = 0.0
    max_amount: float = 0.0
    max_transfer: float = 0.0
    recent_amounts: list[float] = field(default_factory=list)        # last 50, for the median
    window: list[list] = field(default_factory=list)                  # [t, amount, channel, merchant]
    last_t: float | None = None
    last_cp: list[float] | None = None                                # [t, lat, lon]
    merchants: dict[str, list[float]] = field(default_factory=dict)   # id -> [first_t, count]
    devices: dict[str, float] = field(default_factory=dict)           # id -> first_t
    ip_nets: dict[str, float] = field(default_factory=dict)           # /16 -> first_t
    countries: dict[str, int] = field(default_factory=dict)           # country -> count
    mccs: dict[str, int] = field(default_factory=dict)                # mcc -> count
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)
    #: The last k <= HISTORY_ROWS feature rows, oldest first: k x HISTORY_WIDTH little-endian float32 (immutable).
    history: bytes = b""

    def copy(self) -> AccountState:
        return AccountState(
            self.n, self.mean_log, self.m2_log, self.max_amount, self.max_transfer, list(self.recent_amounts),
            [list(w) for w in self.window], self.last_t, list(self.last_cp) if self.last_cp else None,
            {k: list(v) for k, v in self.merchants.items()}, dict(self.devices), dict(self.ip_nets),
            dict(self.countries), dict(self.mccs), list(self.hours), self.history,
        )

    def recent_rows(self) -> np.ndarray:
        """(k, HISTORY_WIDTH) float32, read-only: the remembered feature rows, oldest first (k <= HISTORY_ROWS)."""
        return rows_of(self.history)

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON (pydantic-core's encoder: shortest round-trip floats, 5x the stdlib's speed);
        the history last, in base64 (see the module rules)."""
        return to_json({"v": STATE_VERSION, **self.__dict__, "history": encode_history(self.history)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        """Raises SchemaError when ``raw`` is not a state this version or version 1 wrote."""
        try:
            data = json.loads(raw)
            version = data.pop("v")
            if type(version) is not int or version not in _READABLE_VERSIONS:
                raise ValueError("unsupported state version")
            if version == 1:
                if "history" in data:
                    raise ValueError("a version-1 state has no history")
                history = b""
            else:
                history = decode_history(data.pop("history"))
            state = cls(**data, history=history)
            _clamp_window_times(state.window)
        # Only this code writes states, but the bytes come back from a Kafka topic: whatever they hold,
        # reading them is a SchemaError (RecursionError: nesting deeper than the parser's stack).
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            raise SchemaError(f"bad account state: {type(exc).__name__}: {str(exc)[:200]}") from None
        return state


def pack_row(computed: Sequence[float]) -> bytes:
    """One history row's bytes: the float32 cast of each value, little-endian; a finite value beyond float32
    becomes infinite, as numpy's ``astype`` makes it (struct refuses it)."""
    try:
        return _HISTORY_ROW.pack(*computed)
    except OverflowError:
        return b"".join(_pack_one(v) for v in computed)


def _pack_one(value: float) -> bytes:
    try:
        return _ONE_F32.pack(value)
    except OverflowError:
        return _ONE_F32.pack(math.copysign(math.inf, value))


def rows_of(history: bytes) -> np.ndarray:
    """History bytes as a read-only (k, HISTORY_WIDTH) float32 array (a view of the bytes)."""
    return np.frombuffer(history, dtype=_HISTORY_DTYPE).reshape(-1, HISTORY_WIDTH)


def push_history(history: bytes, row: bytes) -> bytes:
    """``history`` with one row's bytes appended, keeping the last HISTORY_ROWS rows."""
    return (history + row)[-HISTORY_BYTES:]


def encode_history(history: bytes) -> str:
    """A snapshot's ``"history"``: standard base64, with padding."""
    return base64.b64encode(history).decode("ascii")


def decode_history(value: object) -> bytes:
    """The history bytes of a snapshot's ``"history"``.  Raises TypeError or ValueError (not a string, not
    standard base64, not whole rows, more than HISTORY_ROWS rows); any float32 value is kept (see the rules)."""
    if not isinstance(value, str):
        raise TypeError(f"history must be a base64 string, not {type(value).__name__}")
    if len(value) > 4 * HISTORY_BYTES // 3 + 4:  # before decoding: never decode a huge string
        raise ValueError("history longer than HISTORY_ROWS rows")
    try:
        history = base64.b64decode(value, validate=True)
    except binascii.Error as exc:  # a ValueError already; named for the message
        raise ValueError(f"history is not base64: {exc}") from None
    if len(history) % HISTORY_ROW_BYTES:
        raise ValueError(f"history of {len(history)} bytes is not whole rows of {HISTORY_ROW_BYTES}")
    if len(history) > HISTORY_BYTES:
        raise ValueError(f"history of {len(history) // HISTORY_ROW_BYTES} rows, at most {HISTORY_ROWS}")
    return history


def history_block(histories: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Stack B states' ``history`` bytes (k_i <= HISTORY_ROWS rows each, oldest first) into ``rows``
    (B, HISTORY_ROWS, HISTORY_WIDTH) float32, right-aligned (the most recent row last, missing rows first and
    zero), and ``present`` (B, HISTORY_ROWS) bool: one join and one scatter of the rows (padding each history
    in Python cost ten times as much).  Pure.  Raises ValueError for a history that is not whole rows or holds
    more than HISTORY_ROWS."""
    n = len(histories)
    sizes = np.fromiter(map(len, histories), dtype=np.int64, count=n)
    bad = np.flatnonzero((sizes % HISTORY_ROW_BYTES != 0) | (sizes > HISTORY_BYTES))
    if len(bad):
        raise ValueError(f"history {bad[0]} has {sizes[bad[0]]} bytes, wanted whole rows of {HISTORY_ROW_BYTES} "
                         f"and at most {HISTORY_ROWS}")
    counts = sizes // HISTORY_ROW_BYTES
    flat = np.frombuffer(b"".join(histories), dtype=_HISTORY_DTYPE).reshape(-1, HISTORY_WIDTH)
    rows = np.zeros((n * HISTORY_ROWS, HISTORY_WIDTH), dtype=np.float32)  # writable, native
    oldest = np.arange(n) * HISTORY_ROWS + HISTORY_ROWS - counts  # where each history's first row goes
    rows[np.repeat(oldest - (np.cumsum(counts) - counts), counts) + np.arange(len(flat))] = flat
    return rows.reshape(n, HISTORY_ROWS, HISTORY_WIDTH), np.arange(HISTORY_ROWS) >= (HISTORY_ROWS - counts)[:, None]


def _clamp_window_times(window: list[list]) -> None:
    """Give out-of-order entries the newest time before them, as :func:`_update` does (states written
    before it did so may hold them); the window's spans are found by bisection."""
    newest = None
    for entry in window:
        if newest is not None and entry[0] < newest:
            entry[0] = newest
        newest = entry[0]


@dataclass(frozen=True)
class Features:
    """One transaction's feature vector, in :data:`FEATURE_NAMES` order."""

    values: tuple[float, ...]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.values, strict=True))

    def __getitem__(self, name: str) -> float:
        return self.values[_INDEX[name]]


_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def ip_net(ip: str | None) -> str | None:
    """The /16 (IPv4) or /32 (IPv6) network of an address, as a string key."""
    if not ip:
        return None
    if ":" in ip:
        return ":".join(ip.split(":")[:2])
    return ".".join(ip.split(".")[:2])


_W1M, _W1H, _W24H, _W7D = WINDOWS_S["1m"], WINDOWS_S["1h"], WINDOWS_S["24h"], WINDOWS_S["7d"]
assert _W1M <= CARD_TESTING_WINDOW_S <= _W1H <= _W24H <= _W7D  # _compute's nested spans rely on it


_TIME, _AMOUNT, _MERCHANT = itemgetter(0), itemgetter(1), itemgetter(3)


def _span_start(window: list[list], t: float, span: float, lo: int = 0) -> int:
    """Index of the first window entry at most ``span`` seconds before ``t`` (``t - wt <= span``).

    The window is sorted by time; bisecting on ``t - span`` finds the boundary, and the exact test
    ``t - wt <= span`` then settles the entries that floating-point rounding puts either side of it."""
    i = bisect_left(window, t - span, lo, key=_TIME)
    while i > lo and t - window[i - 1][0] <= span:
        i -= 1
    while i < len(window) and t - window[i][0] > span:
        i += 1
    return i


def _median(values: list[float]) -> float:
    """``numpy.median`` of a short list, bit for bit (the mean of the middle two is (a + b) / 2 there too)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return float((ordered[mid - 1] + ordered[mid]) / 2.0)


def _hour_prob(hours: list[float], h: int) -> float:
    # Smoothed with the neighbouring hours: people are not exact to the hour.
    near = hours[h] + 0.5 * (hours[(h - 1) % 24] + hours[(h + 1) % 24])
    return (near + 0.2) / (2.0 * sum(hours) + 4.8)


def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` for positive amounts.  A quotient that under- or overflows (possible only with a
    state from before the clamp) gets the bound instead of a math domain error."""
    r = a / b
    if 0.0 < r < _INF:
        return math.log(r)
    return -_MAX_LOG_RATIO if r <= 0.0 else _MAX_LOG_RATIO


def _compute(s: AccountState, tx: Transaction, amount: float, t: float, net: str | None,
             hour: int) -> tuple[float, ...]:
    log1p = math.log1p
    la = math.log(amount)
    win = s.window
    n_win = len(win)
    is_small_ecom = tx.channel == "ecommerce" and amount <= SMALL_ECOM_AMOUNT
    small_n, small_m = (1, {tx.merchant_id}) if is_small_ecom else (0, set())
    # The window is in time order, so each span is a suffix of it: counts are lengths, and sums add
    # the same entries in the same (window) order as a loop over the span would.
    i7d = _span_start(win, t, _W7D)
    i24h = _span_start(win, t, _W24H, i7d)
    i1h = _span_start(win, t, _W1H, i24h)
    c7d, s7d = n_win - i7d, sum(map(_AMOUNT, win[i7d:]))
    day = win[i24h:]
    c24h, s24h = n_win - i24h, sum(map(_AMOUNT, day))
    atm = [w[1] for w in day if w[2] == "atm"]
    atm_n, atm_sum = len(atm), sum(atm)
    hour_span = win[i1h:]
    c1h, s1h = n_win - i1h, sum(map(_AMOUNT, hour_span))
    merchants_1h = {tx.merchant_id, *map(_MERCHANT, hour_span)}
    c1m, s1m, transfer_n = 0, 0.0, 0
    for wt, wamount, wchannel, wmerchant in hour_span:
        age = t - wt
        if wchannel == "transfer":
            transfer_n += 1
        if age <= CARD_TESTING_WINDOW_S and wchannel == "ecommerce" and wamount <= SMALL_ECOM_AMOUNT:
            small_n += 1
            small_m.add(wmerchant)
        if age <= _W1M:
            c1m += 1
            s1m += wamount
    if s.n >= 3:
        std = math.sqrt(max(0.0, s.m2_log) / (s.n - 1)) if s.n > 1 else 0.0
        z = (la - s.mean_log) / max(std, 0.25)
    else:
        z = 0.0
    median = _median(s.recent_amounts) if s.recent_amounts else amount
    seen = s.merchants.get(tx.merchant_id)
    device_age = (t - s.devices[tx.device_id]) if tx.device_id in s.devices else 0.0
    net_age = (t - s.ip_nets[net]) if net in s.ip_nets else 0.0
    since_prev = (t - s.last_t) if s.last_t is not None else NO_HISTORY_S
    geo_km = geo_speed = 0.0
    if tx.lat is not None and tx.lon is not None and s.last_cp is not None:
        geo_km = haversine_km(s.last_cp[1], s.last_cp[2], tx.lat, tx.lon)
        hours = max(t - s.last_cp[0], 60.0) / 3600.0
        geo_speed = geo_km / hours
    # A device AND a network both first seen within the hour: a fresh session from somewhere new.
    fresh_device = tx.device_id is not None and s.n > 0 and device_age < FRESH_S
    fresh_net = net is not None and s.n > 0 and net_age < FRESH_S
    unfamiliar = float(fresh_device and fresh_net)
    if tx.channel == "transfer":
        ref = s.max_transfer if s.max_transfer > 0 else (median if s.recent_amounts else amount)
        transfer_to_max = _log_ratio(amount, ref)
    else:
        transfer_to_max = 0.0
    channel = tx.channel
    return (
        la,
        z,
        _log_ratio(amount, s.max_amount) if s.max_amount > 0 else 0.0,
        _log_ratio(amount, median) if median > 0 else 0.0,
        log1p(s.n),
        # log1p of values clamped at 0: counts, sums of positive amounts and distances are >= 0 already;
        # ages can be negative (out-of-order input) and are clamped inline.
        log1p(c1m), log1p(c1h), log1p(c24h), log1p(c7d),
        log1p(s1m), log1p(s1h), log1p(s24h), log1p(s7d),
        float(seen is None and s.n > 0),
        float(tx.device_id is not None and tx.device_id not in s.devices and s.n > 0),
        float(tx.country not in s.countries and s.n > 0),
        float(tx.merchant_category not in s.mccs and s.n > 0),
        float(net is not None and net not in s.ip_nets and s.n > 0),
        log1p(seen[1]) if seen else 0.0,
        float(tx.device_id is not None),
        log1p(device_age) if device_age > 0.0 else 0.0,
        float(net is not None),
        log1p(net_age) if net_age > 0.0 else 0.0,
        s.countries.get(tx.country, 0) / s.n if s.n else 1.0,
        log1p(since_prev) if since_prev > 0.0 else 0.0,
        log1p(geo_km),
        log1p(geo_speed),
        float(small_n),
        float(len(small_m)),
        -math.log(_hour_prob(s.hours, hour)) if s.n else 0.0,
        float(len(merchants_1h)),
        float(atm_n),
        log1p(atm_sum),
        float(transfer_n),
        transfer_to_max,
        float(channel == "ecommerce" and tx.device_id is None),
        # CHANNELS, in order (written out: a generator here costs a microsecond per transaction)
        float(channel == "card_present"), float(channel == "ecommerce"), float(channel == "atm"),
        float(channel == "transfer"),
        unfamiliar,
        float(small_n) * unfamiliar,
    )


def _bounded_put(table: dict, key: str, value) -> None:
    table[key] = value
    if len(table) > MAX_SEEN:
        del table[next(iter(table))]


def _update(s: AccountState, tx: Transaction, amount: float, t: float, net: str | None, hour: int) -> None:
    la = math.log(amount)
    s.n += 1
    delta = la - s.mean_log
    s.mean_log += delta / s.n
    s.m2_log += delta * (la - s.mean_log)
    s.max_amount = max(s.max_amount, amount)
    if tx.channel == "transfer":
        s.max_transfer = max(s.max_transfer, amount)
    s.recent_amounts.append(amount)
    if len(s.recent_amounts) > 50:
        del s.recent_amounts[0]
    win = s.window
    stale = bisect_left(win, t - _W7D, key=_TIME)  # entries older than 7 days (the window is sorted)
    stale = max(stale, len(win) - (MAX_WINDOW - 1))
    if stale > 0:
        del win[:stale]
    # An earlier timestamp than the newest entry's is "no time passed": the entry takes the newest
    # time, which keeps the window sorted.
    win.append([t if not win or t >= win[-1][0] else win[-1][0], amount, tx.channel, tx.merchant_id])
    s.last_t = t if s.last_t is None else max(s.last_t, t)
    if tx.lat is not None and tx.lon is not None:
        s.last_cp = [t, tx.lat, tx.lon]
    seen = s.merchants.get(tx.merchant_id)
    if seen:
        seen[1] += 1
    else:
        _bounded_put(s.merchants, tx.merchant_id, [t, 1])
    if tx.device_id is not None and tx.device_id not in s.devices:
        _bounded_put(s.devices, tx.device_id, t)
    if net is not None and net not in s.ip_nets:
        _bounded_put(s.ip_nets, net, t)
    s.countries[tx.country] = s.countries.get(tx.country, 0) + 1
    s.mccs[tx.merchant_category] = s.mccs.get(tx.merchant_category, 0) + 1
    s.hours[hour] += 1.0


def advance(state: AccountState, tx: Transaction) -> Features:
    """Features of ``tx`` from ``state``, then fold ``tx`` into ``state`` (in place)."""
    t, net, hour = tx.epoch_s, ip_net(tx.ip), tx.timestamp.hour
    amount = tx.amount
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:  # a chained compare: the clamp costs nothing on real amounts
        amount = min(MAX_AMOUNT, max(MIN_AMOUNT, amount))
    computed = _compute(state, tx, amount, t, net, hour)
    features = Features(computed
                        + category_keys(tx.merchant_category, tx.country, tx.channel, tx.merchant_id, tx.device_id))
    _update(state, tx, amount, t, net, hour)
    state.history = push_history(state.history, pack_row(computed))
    return features


def step(state: AccountState | None, tx: Transaction) -> tuple[Features, AccountState]:
    """Pure: the features of ``tx`` and the account's state after it; ``state`` is left as it was."""
    new_state = state.copy() if state is not None else AccountState()
    return advance(new_state, tx), new_state


class StreamFeaturizer:
    """Keeps one :class:`AccountState` per account and featurises a time-ordered stream."""

    def __init__(self, states: dict[str, AccountState] | None = None) -> None:
        self.states: dict[str, AccountState] = states if states is not None else {}

    def advance(self, tx: Transaction) -> Features:
        state = self.states.get(tx.account_id)
        if state is None:
            state = self.states[tx.account_id] = AccountState()
        return advance(state, tx)

    def matrix(self, transactions: list[Transaction], progress: bool = False) -> np.ndarray:
        """Featurise ``transactions`` in order; a float32 matrix, one row each."""
        from tqdm import tqdm

        out = np.empty((len(transactions), N_FEATURES), dtype=np.float32)
        for i, tx in enumerate(tqdm(transactions, desc="features", unit="tx", disable=not progress, mininterval=1.0)):
            out[i] = self.advance(tx).values
        return out
