"""The compiled feature kernel over a whole batch: one call into machine code per batch, not per transaction.

:func:`advance_batch` is :func:`npusuite.fraud.feature_kernel.advance` for a
list of (state, transaction) in time order, with the same result bit for bit:
each row of the returned matrix is that function's feature vector, and each
state ends where the same calls one by one would leave it.  Rules, in order:

1. columns: the transactions' numbers and interned string codes are gathered
   into one float64 matrix (the only per-transaction Python left);
2. one compiled loop (:func:`_advance_batch`) runs the kernel's own
   ``_advance`` on each row, reaching each account's arrays through the
   addresses :meth:`~npusuite.fraud.feature_kernel.KernelState.addresses`
   caches (the state objects are kept alive by the caller's list for the
   call).  An account that appears several times is the same state object,
   so its later rows see what its earlier rows left (chaining is the caller's
   list order);
3. a table that must grow stops the loop at that row: the state is grown in
   Python (which replaces its arrays, so its cached addresses are refreshed
   for every later row of the batch) and the loop goes on from that row;
4. the category keys are the reference's crc32 buckets
   (:func:`~npusuite.fraud.categorical.category_keys`), computed from each
   interned string's crc32 (cached per string by the interner) with numpy;
5. history rows (the sequence novelty model's input, see
   :mod:`npusuite.fraud.features`): after the compiled loop the computed
   matrix is converted to float32 once, and each row's bytes are appended to
   its state's ``history`` in list order (an account's repeats in order), as
   one call per transaction would.  :func:`advance_batch_with_history` also
   returns each transaction's history *before* it (recorded in that same
   loop) as :func:`~npusuite.fraud.features.history_block` arrays.

``tests/fraud/test_feature_kernel.py`` checks the batch rows and states against
:func:`~npusuite.fraud.feature_kernel.advance` and the Python reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from npusuite.fraud.categorical import _SIZES
from npusuite.fraud.feature_kernel import _NONE, _SCALARS, INTERNER, N_COMPUTED, Interner, KernelState, _advance
from npusuite.fraud.features import (
    HISTORY_ROW_BYTES,
    MAX_AMOUNT,
    MIN_AMOUNT,
    N_FEATURES,
    history_block,
    ip_net,
    push_history,
)
from npusuite.fraud.schema import Transaction

#: Columns of the transaction matrix.
_AMOUNT, _T, _HOUR, _CHANNEL, _MERCHANT, _DEVICE, _NET, _COUNTRY, _MCC, _HAS_GEO, _LAT, _LON = range(12)
#: Category-key sizes (mcc, country, channel, merchant, device): the reference's buckets are crc % size + 1.
_KEY_SIZES = np.array(_SIZES, dtype=np.int64)


@intrinsic
def _float_pointer(typingctx, address):
    """An int64 address as a ``float64*`` (for ``numba.carray``)."""
    sig = types.CPointer(types.float64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@numba.njit(cache=True)
def _advance_batch(which, addresses, cols, out, start, two):
    """Rows ``start..`` through the kernel; returns the row count when done, else the first row whose state
    must grow.  ``which[i]``: row i's state in ``addresses`` (one row of :meth:`KernelState.addresses` each)."""
    n = cols.shape[0]
    for i in range(start, n):
        a = addresses[which[i]]
        s = numba.carray(_float_pointer(a[0]), (_SCALARS,))
        win = numba.carray(_float_pointer(a[1]), (a[7], 4))
        merchants = numba.carray(_float_pointer(a[2]), (a[8], 3))
        devices = numba.carray(_float_pointer(a[3]), (a[9], 2))
        nets = numba.carray(_float_pointer(a[4]), (a[10], 2))
        countries = numba.carray(_float_pointer(a[5]), (a[11], 2))
        mccs = numba.carray(_float_pointer(a[6]), (a[12], 2))
        c = cols[i]
        if not _advance(s, win, merchants, devices, nets, countries, mccs, out[i], c[0], c[1], int(c[2]), c[3],
                        c[4], c[5], c[6], c[7], c[8], c[9] != 0.0, c[10], c[11], two):
            return i
    return n


def columns(transactions: Sequence[Transaction], interner: Interner = INTERNER) -> np.ndarray:
    """(n, 12) float64: amount (clamped as the reference does), epoch seconds, hour, the codes of channel,
    merchant, device, /16 network, country and category (-1: absent), has-location, lat, lon."""
    codes, code = interner.codes, interner.code
    rows = []
    append = rows.append
    for tx in transactions:
        amount = tx.amount
        if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
            amount = min(MAX_AMOUNT, max(MIN_AMOUNT, amount))
        ts = tx.timestamp
        device, net = tx.device_id, ip_net(tx.ip)
        lat, lon = tx.lat, tx.lon
        geo = lat is not None and lon is not None
        append((amount, ts.timestamp(), ts.hour, codes.get(tx.channel) or code(tx.channel),
                codes.get(tx.merchant_id) or code(tx.merchant_id),
                _NONE if device is None else codes.get(device) or code(device),
                _NONE if net is None else codes.get(net) or code(net),
                codes.get(tx.country) or code(tx.country),
                codes.get(tx.merchant_category) or code(tx.merchant_category),
                1.0 if geo else 0.0, lat if geo else 0.0, lon if geo else 0.0))
    return np.array(rows, dtype=np.float64).reshape(len(rows), 12)


def advance_batch(states: Sequence[KernelState], transactions: Sequence[Transaction],
                  interner: Interner = INTERNER) -> np.ndarray:
    """(n, N_FEATURES) float64: row i is ``feature_kernel.advance(states[i], transactions[i])``, in order,
    every state updated in place, its history included (see the module rules)."""
    return _run_batch(states, transactions, interner, None)


def advance_batch_with_history(states: Sequence[KernelState], transactions: Sequence[Transaction],
                               interner: Interner = INTERNER) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`advance_batch`'s matrix, and ``(rows, present)``: :func:`~npusuite.fraud.features.history_block`
    of each transaction's history *before* it (its state's ``recent_rows()`` just before the one-by-one call,
    so an account's second transaction in the batch sees its first one's row)."""
    before: list[bytes] = []
    matrix = _run_batch(states, transactions, interner, before)
    rows, present = history_block(before)
    return matrix, rows, present


def _run_batch(states: Sequence[KernelState], transactions: Sequence[Transaction], interner: Interner,
               before: list[bytes] | None) -> np.ndarray:
    """:func:`advance_batch`; when ``before`` is a list, each transaction's history bytes before it are
    appended to it."""
    n = len(transactions)
    out = np.empty((n, N_FEATURES))
    if not n:
        return out
    cols = columns(transactions, interner)
    slot: dict[int, int] = {}
    unique: list[KernelState] = []
    which = np.empty(n, dtype=np.int64)
    for i, state in enumerate(states):
        j = slot.get(id(state))
        if j is None:
            j = slot[id(state)] = len(unique)
            unique.append(state)
        which[i] = j
    addresses = np.array([state.addresses() for state in unique], dtype=np.int64)
    computed = np.empty((n, N_COMPUTED))  # the kernel writes whole rows of a C-contiguous array
    done = 0
    while (stopped := _advance_batch(which, addresses, cols, computed, done, 2.0)) < n:
        j = int(which[stopped])
        unique[j]._grow()  # a full table; the kernel changed nothing for this row
        addresses[j] = unique[j].addresses()
        done = stopped
    out[:, :N_COMPUTED] = computed
    _category_keys(cols, interner, out[:, N_COMPUTED:])
    _push_history(states, computed, before)
    return out


def _push_history(states: Sequence[KernelState], computed: np.ndarray, before: list[bytes] | None) -> None:
    """Append row i of ``computed`` (as little-endian float32, the reference's packing) to ``states[i]``'s history,
    in order; record each history before its push into ``before`` (unless None)."""
    with np.errstate(over="ignore"):  # beyond float32: infinite, as the reference's pack_row
        packed = computed.astype("<f4").tobytes()
    size = HISTORY_ROW_BYTES
    for i, state in enumerate(states):
        history = state.history
        if before is not None:
            before.append(history)
        state.history = push_history(history, packed[i * size:(i + 1) * size])


def _category_keys(cols: np.ndarray, interner: Interner, out: np.ndarray) -> None:
    """The reference's ``category_keys`` for every row, into ``out`` (n, 5)."""
    crc = interner.crcs()
    fields = cols[:, [_MCC, _COUNTRY, _CHANNEL, _MERCHANT, _DEVICE]].astype(np.int64)
    absent = fields < 0
    keys = crc[np.where(absent, 0, fields)] % _KEY_SIZES + 1
    out[:] = np.where(absent, 0, keys)
