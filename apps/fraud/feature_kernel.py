"""Streaming features, compiled: :mod:`npusuite.fraud.features` in numba over typed account state.

:mod:`npusuite.fraud.features` stays the reference; this module computes the
same features and the same state, bit for bit (``tests/fraud/test_feature_kernel.py``
replays a generated stream through both and compares every feature and, via
:meth:`KernelState.to_reference`, every state).  Why numba and not a Rust/PyO3
crate: numba is already a dependency, compiles from source on the host
(``cache=True`` keeps the machine code beside the module), so CI and
``deploy/bootstrap.sh`` need no toolchain and no build step; the cost is one
compilation (~seconds) per fresh install, paid by :func:`warm_up`.

Typed state (:class:`KernelState`): the account's numbers in one float64
vector and its window and first-seen tables in float64 matrices.  Strings
(merchant, device, /16 network, country, category, channel) enter as integer
codes from one process-wide :class:`Interner`; the tables keep the
reference's insertion order, so eviction (oldest first) and the conversion
back to an :class:`~npusuite.fraud.features.AccountState` are exact.  Rules:

* bit-identical: every float operation is the reference's, in the same order
  (Python 3.11's ``sum`` adds left to right from 0, as the loops here do; the
  transcendental functions are libm's in both); no ``fastmath``;
* :func:`advance` has the reference's signature and semantics: the features of
  the transaction from the state before it, then the state updated in place;
* the category keys (crc32 buckets) are the reference's own
  :func:`~npusuite.fraud.categorical.category_keys`;
* snapshots are the reference's format (:meth:`KernelState.to_bytes` writes
  the same JSON document with orjson; the test checks the bytes are equal),
  so a changelog written by either implementation restores in the other;
* the history rows (the sequence novelty model's input; see the reference's
  rules: the last 8 feature rows, 42 float32 each, at most 1,344 bytes per
  account) are the reference's own bytes in the ``history`` attribute, not
  one of the compiled arrays (:data:`_ARRAYS`): the kernel never reads them.
  :func:`advance` appends the float32 of the same 42 values the reference
  does (so the bytes are identical), and the batch
  (:mod:`npusuite.fraud.feature_kernel_batch`) appends each row after its
  compiled loop, in the batch's order.

Partial: the interner only grows (one entry per distinct merchant, device,
network, country and category the process has seen; a few MB per million).
"""

from __future__ import annotations

import math
import zlib

import numba
import numpy as np
import orjson

from npusuite.fraud.categorical import category_keys
from npusuite.fraud.features import (
    CARD_TESTING_WINDOW_S,
    CHANNELS,
    FRESH_S,
    HISTORY_BYTES,
    HISTORY_ROW_BYTES,
    HISTORY_WIDTH,
    MAX_AMOUNT,
    MAX_SEEN,
    MAX_WINDOW,
    MIN_AMOUNT,
    NO_HISTORY_S,
    SMALL_ECOM_AMOUNT,
    STATE_VERSION,
    WINDOWS_S,
    AccountState,
    Features,
    encode_history,
    ip_net,
    pack_row,
    push_history,
    rows_of,
)
from npusuite.fraud.schema import Transaction
from npusuite.platform.errors import SchemaError

# -- the scalar vector's layout -------------------------------------------------------------
_N, _MEAN, _M2, _MAX, _MAXT, _HAS_T, _LAST_T, _HAS_CP, _CP_T, _CP_LAT, _CP_LON = range(11)
_N_RECENT, _N_WIN, _N_MER, _N_DEV, _N_NET, _N_CTRY, _N_MCC = range(11, 18)
_HOURS = 18
_RECENT = _HOURS + 24
_RECENT_MAX = 50
_SCALARS = _RECENT + _RECENT_MAX
#: Features the kernel computes (the reference's, before the category keys): a history row's.
N_COMPUTED = 42
assert N_COMPUTED == HISTORY_WIDTH
_MAX_LOG_RATIO = math.log(MAX_AMOUNT / MIN_AMOUNT)
_W1M, _W1H, _W24H, _W7D = WINDOWS_S["1m"], WINDOWS_S["1h"], WINDOWS_S["24h"], WINDOWS_S["7d"]
_DEG = math.pi / 180.0  # CPython's math.radians multiplies by this constant
_NONE = -1.0  # the code of an absent string
# Channel codes: the interner hands out CHANNELS' codes first.
_CARD_PRESENT, _ECOMMERCE, _ATM, _TRANSFER = 0.0, 1.0, 2.0, 3.0


class Interner:
    """String -> float code (exact integers), and back; the first codes are the channels'."""

    def __init__(self) -> None:
        self.codes: dict[str, float] = {}
        self.strings: list[str] = []
        self._crc = np.zeros(0, dtype=np.int64)
        self._crc_filled = 0
        for channel in CHANNELS:
            self.code(channel)

    def code(self, value: str) -> float:
        c = self.codes.get(value)
        if c is None:
            c = self.codes[value] = float(len(self.strings))
            self.strings.append(value)
        return c

    def crcs(self) -> np.ndarray:
        """int64: ``zlib.crc32`` of every string's UTF-8 (surrogatepass) bytes, by code: the category keys'
        hash (:func:`~npusuite.fraud.categorical.category_keys`), computed once per string."""
        n, done = len(self.strings), self._crc_filled
        if done < n:
            if len(self._crc) < n:  # doubling: amortised O(1) per string
                grown = np.zeros(max(n, 2 * len(self._crc), 1024), dtype=np.int64)
                grown[:done] = self._crc[:done]
                self._crc = grown
            self._crc[done:n] = [zlib.crc32(v.encode("utf-8", "surrogatepass")) for v in self.strings[done:n]]
            self._crc_filled = n
        return self._crc[:n]

    def optional(self, value: str | None) -> float:
        return _NONE if value is None else self.code(value)


INTERNER = Interner()
#: KernelState's arrays, in the order :meth:`KernelState.addresses` gives them, and a new state's
#: (rows, columns; 0 columns: a vector): the window (t, amount, channel code, merchant code), merchants
#: (code, first_t, count), devices and nets (code, first_t), countries and categories (code, count).
_ARRAYS = ("s", "window", "merchants", "devices", "nets", "countries", "mccs")
_INITIAL = ((_SCALARS, 0), (8, 4), (8, 3), (4, 2), (4, 2), (4, 2), (4, 2))
_INITIAL_SHAPES = tuple((rows, width) if width else (rows,) for rows, width in _INITIAL)
_INITIAL_STARTS = tuple(int(v) for v in np.cumsum([0, *(rows * max(1, width) for rows, width in _INITIAL[:-1])]))
_INITIAL_SIZE = sum(rows * max(1, width) for rows, width in _INITIAL)
#: Byte offsets of the arrays in a new state's buffer, then the tables' row counts.
_INITIAL_META = np.array([8 * start for start in _INITIAL_STARTS] + [rows for rows, _ in _INITIAL[1:]],
                         dtype=np.int64)


class KernelState:
    """One account's state in typed arrays (see the module rules), and its history rows' bytes (``history``)."""

    __slots__ = (*_ARRAYS, "_meta", "history")

    def __init__(self) -> None:
        # One allocation for all seven arrays (views into it), so a new account costs one buffer and
        # its addresses (:meth:`addresses`) one lookup.
        buf = np.zeros(_INITIAL_SIZE)
        views = [buf[start:start + rows * width].reshape(shape) if width else buf[start:start + rows]
                 for start, (rows, width), shape in zip(_INITIAL_STARTS, _INITIAL, _INITIAL_SHAPES, strict=True)]
        for name, view in zip(_ARRAYS, views, strict=True):
            object.__setattr__(self, name, view)
        meta = _INITIAL_META.copy()
        meta[:len(_ARRAYS)] += buf.ctypes.data
        object.__setattr__(self, "_meta", meta)
        object.__setattr__(self, "history", b"")

    def __setattr__(self, name: str, value) -> None:
        # A new array must update the cached addresses (:meth:`addresses`): the batch kernel writes
        # through them, so a stale one would write into freed memory.  ``history`` is no array.
        object.__setattr__(self, name, value)
        if name == "history" or name == "_meta":
            return
        meta = self._meta
        if meta is None:
            return
        i = _ARRAYS.index(name)
        if value.dtype != np.float64 or not value.flags.c_contiguous:
            object.__setattr__(self, "_meta", None)  # addresses() refuses it
            return
        meta[i] = value.ctypes.data
        if i:
            meta[len(_ARRAYS) + i - 1] = len(value)

    def __reduce__(self):
        # Rebuilt through setattr, so a deep copy or an unpickled state never carries the original's addresses.
        return _kernel_state, (*(getattr(self, name) for name in _ARRAYS), self.history)

    def copy(self) -> KernelState:
        out = KernelState()
        for name in _ARRAYS:
            setattr(out, name, getattr(self, name).copy())
        out.history = self.history  # bytes: immutable, shared
        return out

    def recent_rows(self) -> np.ndarray:
        """(k, HISTORY_WIDTH) float32, read-only: the remembered feature rows, oldest first (as the reference's)."""
        return rows_of(self.history)

    def addresses(self) -> np.ndarray:
        """int64: the data addresses of the arrays (:data:`_ARRAYS` order), then the row counts of the
        tables (all but ``s``); kept up to date as arrays are replaced.  Valid only while this object lives.
        Raises TypeError for an array the kernel cannot read through its address."""
        if self._meta is None:
            arrays = [getattr(self, name) for name in _ARRAYS]
            for a in arrays:  # the kernel reads them as C-contiguous float64 through raw addresses
                if a.dtype != np.float64 or not a.flags.c_contiguous:
                    raise TypeError("KernelState arrays must be C-contiguous float64")
            object.__setattr__(self, "_meta", np.array([a.ctypes.data for a in arrays]
                                                       + [len(a) for a in arrays[1:]], dtype=np.int64))
        return self._meta

    def _grow(self) -> None:
        """Double every table that is full and below its bound (the kernel's ``_no_room`` asks for this)."""
        s = self.s
        for name, count, limit in (("window", _N_WIN, MAX_WINDOW), ("merchants", _N_MER, MAX_SEEN),
                                   ("devices", _N_DEV, MAX_SEEN), ("nets", _N_NET, MAX_SEEN),
                                   ("countries", _N_CTRY, None), ("mccs", _N_MCC, None)):
            table = getattr(self, name)
            if s[count] >= len(table) and (limit is None or len(table) < limit):
                size = 2 * len(table) if limit is None else min(limit, 2 * len(table))
                grown = np.zeros((size, table.shape[1]))
                grown[:len(table)] = table
                setattr(self, name, grown)

    # -- conversion to and from the reference ------------------------------------------------
    def to_reference(self, interner: Interner = INTERNER) -> AccountState:
        s, strings = self.s, interner.strings
        n_win = int(s[_N_WIN])
        win = self.window[:n_win].tolist()
        window = [[t, amount, strings[int(ch)], strings[int(m)]] for t, amount, ch, m in win]
        return AccountState(
            n=int(s[_N]), mean_log=float(s[_MEAN]), m2_log=float(s[_M2]), max_amount=float(s[_MAX]),
            max_transfer=float(s[_MAXT]), recent_amounts=s[_RECENT:_RECENT + int(s[_N_RECENT])].tolist(),
            window=window, last_t=float(s[_LAST_T]) if s[_HAS_T] else None,
            last_cp=s[_CP_T:_CP_LON + 1].tolist() if s[_HAS_CP] else None,
            merchants={strings[int(k)]: [t, int(c)] for k, t, c in self.merchants[:int(s[_N_MER])].tolist()},
            devices={strings[int(k)]: t for k, t in self.devices[:int(s[_N_DEV])].tolist()},
            ip_nets={strings[int(k)]: t for k, t in self.nets[:int(s[_N_NET])].tolist()},
            countries={strings[int(k)]: int(c) for k, c in self.countries[:int(s[_N_CTRY])].tolist()},
            mccs={strings[int(k)]: int(c) for k, c in self.mccs[:int(s[_N_MCC])].tolist()},
            hours=s[_HOURS:_HOURS + 24].tolist(), history=self.history)

    @classmethod
    def from_reference(cls, ref: AccountState, interner: Interner = INTERNER) -> KernelState:
        """Raises ValueError for a state the kernel cannot hold exactly (a count beyond 2**53, more than
        MAX_WINDOW entries or MAX_SEEN keys, or more than 50 recent amounts), or with a history that is not
        bytes of at most HISTORY_ROWS whole rows."""
        if (len(ref.window) > MAX_WINDOW or len(ref.recent_amounts) > _RECENT_MAX
                or max(len(ref.merchants), len(ref.devices), len(ref.ip_nets)) > MAX_SEEN or ref.n > 2 ** 53):
            raise ValueError("account state beyond the kernel's bounds")
        history = ref.history
        if type(history) is not bytes or len(history) % HISTORY_ROW_BYTES or len(history) > HISTORY_BYTES:
            raise ValueError("account state history is not bytes of at most HISTORY_ROWS rows")
        out = cls()
        s = out.s
        code = interner.code
        s[_N], s[_MEAN], s[_M2], s[_MAX], s[_MAXT] = ref.n, ref.mean_log, ref.m2_log, ref.max_amount, ref.max_transfer
        if ref.last_t is not None:
            s[_HAS_T], s[_LAST_T] = 1.0, ref.last_t
        if ref.last_cp is not None:
            s[_HAS_CP] = 1.0
            s[_CP_T:_CP_LON + 1] = ref.last_cp
        s[_N_RECENT] = len(ref.recent_amounts)
        s[_RECENT:_RECENT + len(ref.recent_amounts)] = ref.recent_amounts
        s[_HOURS:_HOURS + 24] = ref.hours
        out.window = _rows([[t, amount, code(ch), code(m)] for t, amount, ch, m in ref.window], 4)
        out.merchants = _rows([[code(k), v[0], v[1]] for k, v in ref.merchants.items()], 3)
        out.devices = _rows([[code(k), v] for k, v in ref.devices.items()], 2)
        out.nets = _rows([[code(k), v] for k, v in ref.ip_nets.items()], 2)
        out.countries = _rows([[code(k), v] for k, v in ref.countries.items()], 2)
        out.mccs = _rows([[code(k), v] for k, v in ref.mccs.items()], 2)
        for name, count in (("window", _N_WIN), ("merchants", _N_MER), ("devices", _N_DEV), ("nets", _N_NET),
                            ("countries", _N_CTRY), ("mccs", _N_MCC)):
            s[count] = len(getattr(ref, {"nets": "ip_nets"}.get(name, name)))
        out.history = history
        return out

    def to_bytes(self, interner: Interner = INTERNER) -> bytes:
        """A snapshot in the reference's format (:meth:`AccountState.to_bytes`: JSON, its version, its
        fields in its order), written with orjson straight from the arrays (no AccountState in between)."""
        s, strings = self.s, interner.strings
        n_win, n_mer, n_dev, n_net, n_ctry, n_mcc = (int(v) for v in s[_N_WIN:_N_MCC + 1].tolist())
        return orjson.dumps({
            "v": STATE_VERSION, "n": int(s[_N]), "mean_log": float(s[_MEAN]), "m2_log": float(s[_M2]),
            "max_amount": float(s[_MAX]), "max_transfer": float(s[_MAXT]),
            "recent_amounts": s[_RECENT:_RECENT + int(s[_N_RECENT])].tolist(),
            "window": [[t, amount, strings[int(ch)], strings[int(m)]]
                       for t, amount, ch, m in self.window[:n_win].tolist()],
            "last_t": float(s[_LAST_T]) if s[_HAS_T] else None,
            "last_cp": s[_CP_T:_CP_LON + 1].tolist() if s[_HAS_CP] else None,
            "merchants": {strings[int(k)]: [t, int(c)] for k, t, c in self.merchants[:n_mer].tolist()},
            "devices": {strings[int(k)]: t for k, t in self.devices[:n_dev].tolist()},
            "ip_nets": {strings[int(k)]: t for k, t in self.nets[:n_net].tolist()},
            "countries": {strings[int(k)]: int(c) for k, c in self.countries[:n_ctry].tolist()},
            "mccs": {strings[int(k)]: int(c) for k, c in self.mccs[:n_mcc].tolist()},
            "hours": s[_HOURS:_HOURS + 24].tolist(), "history": encode_history(self.history)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> KernelState:
        """Raises SchemaError like :meth:`AccountState.from_bytes`, also for a state beyond the kernel's bounds."""
        ref = AccountState.from_bytes(raw)
        try:
            return cls.from_reference(ref)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SchemaError(f"bad account state for the feature kernel: {exc}") from None


def _kernel_state(*fields) -> KernelState:
    """A KernelState holding these arrays (:data:`_ARRAYS` order), then its history bytes (see
    ``KernelState.__reduce__``; a pickle from before the history has none: an empty history)."""
    out = KernelState()
    n = len(_ARRAYS)
    for name, array in zip(_ARRAYS, fields[:n], strict=True):
        setattr(out, name, array)
    if len(fields) > n:
        out.history = fields[n]
    return out


def _rows(rows: list[list[float]], width: int) -> np.ndarray:
    out = np.zeros((max(4, len(rows) + 1), width))
    if rows:
        out[:len(rows)] = rows
    return out


# -- the kernel --------------------------------------------------------------------------------
@numba.njit(cache=True)
def _span_start(win, n, t, span, lo):
    """The first index i >= lo with ``t - win[i, 0] <= span`` (the predicate is monotone in i): the
    reference's bisection plus its exact-test corrections land on the same index."""
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if t - win[mid, 0] <= span:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True)
def _find(table, n, key):
    for i in range(n):
        if table[i, 0] == key:
            return i
    return -1


@numba.njit(cache=True)
def _b(flag):
    return 1.0 if flag else 0.0


@numba.njit(cache=True)
def _log_ratio(a, b):
    r = a / b
    if 0.0 < r < math.inf:
        return math.log(r)
    return -_MAX_LOG_RATIO if r <= 0.0 else _MAX_LOG_RATIO


@numba.njit(cache=True)
def _haversine_km(lat1, lon1, lat2, lon2, two):
    """``world.haversine_km``.  ``two`` is 2.0, passed at run time: CPython's ``x ** 2`` is libm's
    ``pow(|x|, 2.0)``, which differs from ``x * x`` in the last bit for ~1 in 3000 values, and LLVM
    rewrites ``pow(x, 2.0)`` with a constant exponent into ``x * x``."""
    p1, p2 = lat1 * _DEG, lat2 * _DEG
    dp, dl = p2 - p1, (lon2 - lon1) * _DEG
    a = math.pow(abs(math.sin(dp / 2)), two) + math.cos(p1) * math.cos(p2) * math.pow(abs(math.sin(dl / 2)), two)
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


@numba.njit(cache=True)
def _no_room(s, win, merchants, devices, nets, countries, mccs):
    """A table the next transaction may add to is full and :meth:`KernelState._grow` would grow it."""
    return ((s[_N_WIN] >= win.shape[0] and win.shape[0] < MAX_WINDOW)
            or (s[_N_MER] >= merchants.shape[0] and merchants.shape[0] < MAX_SEEN)
            or (s[_N_DEV] >= devices.shape[0] and devices.shape[0] < MAX_SEEN)
            or (s[_N_NET] >= nets.shape[0] and nets.shape[0] < MAX_SEEN)
            or s[_N_CTRY] >= countries.shape[0] or s[_N_MCC] >= mccs.shape[0])


@numba.njit(cache=True)
def _put(table, n, row):
    """Append ``row`` to a bounded insertion-ordered table of n rows; drop the oldest beyond MAX_SEEN.
    Returns the new row count."""
    if n + 1 > MAX_SEEN:
        table[:n - 1] = table[1:n].copy()
        n -= 1
    table[n, :] = row
    return n + 1


@numba.njit(cache=True)
def _count(table, n, key):
    """``table[key] += 1`` of an unbounded insertion-ordered counter table; returns the new row count."""
    i = _find(table, n, key)
    if i >= 0:
        table[i, 1] += 1.0
        return n
    table[n, 0] = key
    table[n, 1] = 1.0
    return n + 1


@numba.njit(cache=True)
def _advance(s, win, merchants, devices, nets, countries, mccs, out,
             amount, t, hour, channel, merchant, device, net, country, mcc, has_geo, lat, lon, two):
    """Features into ``out`` and the state updated; returns False, changing nothing, when a table the
    transaction may add to is full and below its bound (the caller grows it and calls again)."""
    if _no_room(s, win, merchants, devices, nets, countries, mccs):
        return False
    # ---- features, from the state before the transaction (features._compute) ----
    log1p = math.log1p
    la = math.log(amount)
    n = s[_N]
    n_win = int(s[_N_WIN])
    is_small_ecom = channel == _ECOMMERCE and amount <= SMALL_ECOM_AMOUNT
    small_n = 0
    small_m = {merchant}
    small_m.clear()
    if is_small_ecom:
        small_n = 1
        small_m.add(merchant)
    i7d = _span_start(win, n_win, t, _W7D, 0)
    i24h = _span_start(win, n_win, t, _W24H, i7d)
    i1h = _span_start(win, n_win, t, _W1H, i24h)
    s7d = 0.0
    for i in range(i7d, n_win):
        s7d += win[i, 1]
    s24h = 0.0
    for i in range(i24h, n_win):
        s24h += win[i, 1]
    atm_n = 0
    atm_sum = 0.0
    for i in range(i24h, n_win):
        if win[i, 2] == _ATM:
            atm_n += 1
            atm_sum += win[i, 1]
    s1h = 0.0
    for i in range(i1h, n_win):
        s1h += win[i, 1]
    merchants_1h = {merchant}
    c1m, s1m, transfer_n = 0, 0.0, 0
    for i in range(i1h, n_win):
        wt, wamount, wchannel, wmerchant = win[i, 0], win[i, 1], win[i, 2], win[i, 3]
        merchants_1h.add(wmerchant)
        age = t - wt
        if wchannel == _TRANSFER:
            transfer_n += 1
        if age <= CARD_TESTING_WINDOW_S and wchannel == _ECOMMERCE and wamount <= SMALL_ECOM_AMOUNT:
            small_n += 1
            small_m.add(wmerchant)
        if age <= _W1M:
            c1m += 1
            s1m += wamount
    c7d, c24h, c1h = n_win - i7d, n_win - i24h, n_win - i1h
    if n >= 3:
        std = math.sqrt(max(0.0, s[_M2]) / (n - 1)) if n > 1 else 0.0
        z = (la - s[_MEAN]) / max(std, 0.25)
    else:
        z = 0.0
    n_recent = int(s[_N_RECENT])
    if n_recent:
        ordered = np.sort(s[_RECENT:_RECENT + n_recent])
        mid = n_recent // 2
        median = ordered[mid] if n_recent % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
    else:
        median = amount
    n_mer, n_dev, n_net = int(s[_N_MER]), int(s[_N_DEV]), int(s[_N_NET])
    seen = _find(merchants, n_mer, merchant)
    idev = _find(devices, n_dev, device) if device != _NONE else -1
    inet = _find(nets, n_net, net) if net != _NONE else -1
    device_age = (t - devices[idev, 1]) if idev >= 0 else 0.0
    net_age = (t - nets[inet, 1]) if inet >= 0 else 0.0
    since_prev = (t - s[_LAST_T]) if s[_HAS_T] else NO_HISTORY_S
    geo_km = 0.0
    geo_speed = 0.0
    if has_geo and s[_HAS_CP]:
        geo_km = _haversine_km(s[_CP_LAT], s[_CP_LON], lat, lon, two)
        hours = max(t - s[_CP_T], 60.0) / 3600.0
        geo_speed = geo_km / hours
    fresh_device = device != _NONE and n > 0 and device_age < FRESH_S
    fresh_net = net != _NONE and n > 0 and net_age < FRESH_S
    unfamiliar = 1.0 if (fresh_device and fresh_net) else 0.0
    if channel == _TRANSFER:
        ref = s[_MAXT] if s[_MAXT] > 0 else (median if n_recent else amount)
        transfer_to_max = _log_ratio(amount, ref)
    else:
        transfer_to_max = 0.0
    n_ctry = int(s[_N_CTRY])
    ictry = _find(countries, n_ctry, country)
    imcc = _find(mccs, int(s[_N_MCC]), mcc)
    hsum = 0.0
    for h in range(24):
        hsum += s[_HOURS + h]
    out[0] = la
    out[1] = z
    out[2] = _log_ratio(amount, s[_MAX]) if s[_MAX] > 0 else 0.0
    out[3] = _log_ratio(amount, median) if median > 0 else 0.0
    out[4] = log1p(n)
    out[5] = log1p(c1m)
    out[6] = log1p(c1h)
    out[7] = log1p(c24h)
    out[8] = log1p(c7d)
    out[9] = log1p(s1m)
    out[10] = log1p(s1h)
    out[11] = log1p(s24h)
    out[12] = log1p(s7d)
    out[13] = _b(seen < 0 and n > 0)
    out[14] = _b(device != _NONE and idev < 0 and n > 0)
    out[15] = _b(ictry < 0 and n > 0)
    out[16] = _b(imcc < 0 and n > 0)
    out[17] = _b(net != _NONE and inet < 0 and n > 0)
    out[18] = log1p(merchants[seen, 2]) if seen >= 0 else 0.0
    out[19] = _b(device != _NONE)
    out[20] = log1p(device_age) if device_age > 0.0 else 0.0
    out[21] = _b(net != _NONE)
    out[22] = log1p(net_age) if net_age > 0.0 else 0.0
    out[23] = (countries[ictry, 1] if ictry >= 0 else 0.0) / n if n else 1.0
    out[24] = log1p(since_prev) if since_prev > 0.0 else 0.0
    out[25] = log1p(geo_km)
    out[26] = log1p(geo_speed)
    out[27] = float(small_n)
    out[28] = float(len(small_m))
    if n:
        near = s[_HOURS + hour] + 0.5 * (s[_HOURS + (hour - 1) % 24] + s[_HOURS + (hour + 1) % 24])
        out[29] = -math.log((near + 0.2) / (2.0 * hsum + 4.8))
    else:
        out[29] = 0.0
    out[30] = float(len(merchants_1h))
    out[31] = float(atm_n)
    out[32] = log1p(atm_sum)
    out[33] = float(transfer_n)
    out[34] = transfer_to_max
    out[35] = _b(channel == _ECOMMERCE and device == _NONE)
    out[36] = _b(channel == _CARD_PRESENT)
    out[37] = _b(channel == _ECOMMERCE)
    out[38] = _b(channel == _ATM)
    out[39] = _b(channel == _TRANSFER)
    out[40] = unfamiliar
    out[41] = float(small_n) * unfamiliar

    # ---- fold the transaction in (features._update) ----
    n += 1.0
    s[_N] = n
    delta = la - s[_MEAN]
    s[_MEAN] += delta / n
    s[_M2] += delta * (la - s[_MEAN])
    s[_MAX] = max(s[_MAX], amount)
    if channel == _TRANSFER:
        s[_MAXT] = max(s[_MAXT], amount)
    if n_recent == _RECENT_MAX:
        s[_RECENT:_RECENT + _RECENT_MAX - 1] = s[_RECENT + 1:_RECENT + _RECENT_MAX].copy()
        n_recent -= 1
    s[_RECENT + n_recent] = amount
    s[_N_RECENT] = n_recent + 1
    # bisect_left on the window's times for t - 7d: the first entry not older than 7 days
    x = t - _W7D
    lo, hi = 0, n_win
    while lo < hi:
        mid = (lo + hi) // 2
        if win[mid, 0] < x:
            lo = mid + 1
        else:
            hi = mid
    stale = max(lo, n_win - (MAX_WINDOW - 1))
    if stale > 0:
        win[:n_win - stale] = win[stale:n_win].copy()
        n_win -= stale
    win[n_win, 0] = t if n_win == 0 or t >= win[n_win - 1, 0] else win[n_win - 1, 0]
    win[n_win, 1] = amount
    win[n_win, 2] = channel
    win[n_win, 3] = merchant
    s[_N_WIN] = n_win + 1
    if s[_HAS_T]:
        s[_LAST_T] = max(s[_LAST_T], t)
    else:
        s[_HAS_T] = 1.0
        s[_LAST_T] = t
    if has_geo:
        s[_HAS_CP] = 1.0
        s[_CP_T] = t
        s[_CP_LAT] = lat
        s[_CP_LON] = lon
    if seen >= 0:
        merchants[seen, 2] += 1.0
    else:
        row = np.empty(3)
        row[0], row[1], row[2] = merchant, t, 1.0
        s[_N_MER] = _put(merchants, n_mer, row)
    if device != _NONE and idev < 0:
        row2 = np.empty(2)
        row2[0], row2[1] = device, t
        s[_N_DEV] = _put(devices, n_dev, row2)
    if net != _NONE and inet < 0:
        row3 = np.empty(2)
        row3[0], row3[1] = net, t
        s[_N_NET] = _put(nets, n_net, row3)
    s[_N_CTRY] = _count(countries, n_ctry, country)
    s[_N_MCC] = _count(mccs, int(s[_N_MCC]), mcc)
    s[_HOURS + hour] += 1.0
    return True


def advance(state: KernelState, tx: Transaction, interner: Interner = INTERNER) -> Features:
    """:func:`npusuite.fraud.features.advance` on a :class:`KernelState`: same features, same state."""
    amount = tx.amount
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        amount = min(MAX_AMOUNT, max(MIN_AMOUNT, amount))
    code, optional = interner.code, interner.optional
    has_geo = tx.lat is not None and tx.lon is not None
    out = np.empty(N_COMPUTED)
    args = (amount, tx.epoch_s, tx.timestamp.hour, code(tx.channel), code(tx.merchant_id), optional(tx.device_id),
            optional(ip_net(tx.ip)), code(tx.country), code(tx.merchant_category), has_geo,
            tx.lat if has_geo else 0.0, tx.lon if has_geo else 0.0, 2.0)
    # The room test runs in the kernel (one call instead of a Python check per transaction); a table
    # that must grow first is grown here and the call repeated (tables double, so that is rare).
    while not _advance(state.s, state.window, state.merchants, state.devices, state.nets, state.countries,
                       state.mccs, out, *args):
        state._grow()
    computed = out.tolist()
    # The reference's push: the same 42 doubles through the same float32 packing.
    state.history = push_history(state.history, pack_row(computed))
    return Features(tuple(computed)
                    + category_keys(tx.merchant_category, tx.country, tx.channel, tx.merchant_id, tx.device_id))


def warm_up() -> None:
    """Compile (or load from the cache) before the first transaction is timed."""
    from datetime import UTC, datetime

    tx = Transaction(transaction_id="warm", account_id="warm", card_id="c", timestamp=datetime(2026, 1, 1, tzinfo=UTC),
                     amount=1.0, currency="EUR", merchant_id="m", merchant_category="5411", country="DE",
                     channel="card_present")
    advance(KernelState(), tx, Interner())
