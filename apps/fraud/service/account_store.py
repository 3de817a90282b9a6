"""Per-partition account state, persisted in a compacted Kafka changelog topic.

Why a changelog topic (as Kafka Streams does) rather than a local database:

* it is written **inside the same Kafka transaction** as the scores and the
  consumed offsets, so state, outputs and offsets commit or abort together;
  a SIGKILL can never leave state ahead of, or behind, the offsets;
* partition ``p`` of the changelog holds exactly the accounts of partition
  ``p`` of ``transactions``, so when the group moves a partition to another
  process, on this host or another, that process rebuilds the state from the
  topic: nothing has to be copied between machines.

Record layout (one record per scored transaction, keyed so that compaction
keeps each account's last ``R`` transactions):

* key   ``<account_id>#<seq mod R>`` (a ring of ``R`` slots per account);
* value ``>QHI`` (seq, len(transaction_id), len(snapshot)) + transaction_id +
  snapshot + the transaction's original JSON bytes.

``seq`` counts the account's transactions.  Serialising a state costs more
than computing its features, so the state *snapshot* (the scorer's bytes for
the state after this transaction) is written only when at least ``R/2``
transactions of the account have passed since its last snapshot, and then on
the account's last record of the batch (the only point of a batch where the
scorer's in-place state object is the state after that record); other records
carry an empty snapshot.  So after every committed batch at most ``R/2 - 1``
records follow an account's latest snapshot: the ring always holds that
snapshot and every transaction after it, and on restore an account's state is
the latest snapshot with the later transactions replayed through the same
feature code (:class:`PendingState`, resolved lazily by the scorer on first
use); its recent transactions are the ring sorted by ``seq``.

Rules:

* Entries and the scorer's state objects are updated in place while a batch
  is processed (copying them costs as much as the features).  So if a Kafka
  transaction aborts, the runner drops the in-memory partitions it touched and
  restores them from the changelog (the committed truth) before going on.
* :meth:`AccountStore.record` updates an account's entry in place.
* :meth:`ChangelogReader.restore` must be called only when no open
  transaction can still write to that changelog partition (it waits for that
  itself: last stable offset == high watermark).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from npusuite.platform.contracts.account_state import VALUE_HEADER as _HEADER

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingState:
    """A restored state not yet rebuilt: the latest snapshot (None: from empty) and the transactions after it."""

    snapshot: bytes | None
    transactions: tuple[bytes, ...]


@dataclass
class AccountEntry:
    """What the scorer knows about one account."""

    seq: int = 0
    #: The scorer's state object, or a :class:`PendingState` until first used.
    state: object | None = None
    #: (transaction_id, original bytes), oldest first; at most the ring size.
    recent: deque = field(default_factory=deque)
    #: The transaction_ids in ``recent`` (duplicate detection).
    ids: set = field(default_factory=set)
    #: ``seq`` of the latest record that carries a state snapshot (0: none yet).
    snapshot_seq: int = 0


#: Longest transaction_id (UTF-8 bytes) and snapshot the header's length fields hold.
MAX_TID_BYTES = 2**16 - 1
MAX_STATE_BYTES = 2**32 - 1


def encode_value(seq: int, transaction_id: str, state: bytes, raw: bytes) -> bytes:
    """Raises ValueError (never struct.error) for a transaction_id or snapshot the header cannot hold.

    The schema bounds ids far below this (128 characters), so this is defence in depth: the processor
    dead-letters a record whose changelog value cannot be written instead of stalling on it."""
    tid = transaction_id.encode("utf-8", "surrogatepass")
    if len(tid) > MAX_TID_BYTES or len(state) > MAX_STATE_BYTES:
        raise ValueError(f"transaction_id of {len(tid)} bytes or state of {len(state)} bytes does not fit the "
                         f"changelog header (at most {MAX_TID_BYTES} and {MAX_STATE_BYTES})")
    return _HEADER.pack(seq, len(tid), len(state)) + tid + state + raw


def decode_value(value: bytes) -> tuple[int, str, bytes, bytes]:
    """Returns (seq, transaction_id, state, raw transaction bytes).  Raises ValueError on a corrupt record."""
    if len(value) < _HEADER.size:
        raise ValueError("changelog record shorter than its header")
    seq, tid_len, state_len = _HEADER.unpack_from(value)
    start = _HEADER.size
    tid = value[start:start + tid_len].decode("utf-8", "surrogatepass")
    state = value[start + tid_len:start + tid_len + state_len]
    raw = value[start + tid_len + state_len:]
    return seq, tid, bytes(state), bytes(raw)


class AccountStore:
    """Account entries of the partitions this process owns, updated in place as transactions are scored.

    Between a batch's first :meth:`record` and its Kafka commit the entries are ahead of what is
    committed; if the commit fails the runner drops the touched partitions and restores them."""

    def __init__(self, ring_size: int = 20):
        self.ring_size = max(2, ring_size)
        #: Every this many transactions of an account, its record carries a state snapshot.
        self.snapshot_every = self.ring_size // 2
        self.partitions: dict[int, dict[str, AccountEntry]] = {}

    def owns(self, partition: int) -> bool:
        return partition in self.partitions

    def set_partition(self, partition: int, accounts: dict[str, AccountEntry]) -> None:
        self.partitions[partition] = accounts

    def drop_partition(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def entry(self, partition: int, account_id: str) -> AccountEntry:
        """The account's entry (a new, empty one for an unknown account).  KeyError: partition not owned."""
        accounts = self.partitions[partition]
        entry = accounts.get(account_id)
        if entry is None:
            entry = accounts[account_id] = AccountEntry(recent=deque(maxlen=self.ring_size))
        return entry

    def snapshot_due(self, entry: AccountEntry) -> bool:
        """Whether the account's next record must carry a snapshot if it is its last of the batch."""
        return entry.seq + 1 - entry.snapshot_seq >= self.snapshot_every

    def record(self, entry: AccountEntry, account_id: str, transaction_id: str, state: object,
               snapshot: bytes | None, raw: bytes) -> tuple[bytes, bytes]:
        """Fold one scored transaction into ``entry``; returns the changelog (key, value).

        ``snapshot`` must be given when :meth:`snapshot_due` says so at the account's last record of a batch."""
        seq = entry.seq + 1
        value = encode_value(seq, transaction_id, snapshot or b"", raw)  # may raise: before the entry changes
        entry.seq = seq
        entry.state = state
        if snapshot:
            entry.snapshot_seq = seq
        if len(entry.recent) == entry.recent.maxlen:
            entry.ids.discard(entry.recent[0][0])
        entry.recent.append((transaction_id, raw))
        entry.ids.add(transaction_id)
        return f"{account_id}#{seq % self.ring_size}".encode("utf-8", "surrogatepass"), value


def rebuild(records: Iterable[tuple[bytes, bytes | None]], ring_size: int) -> dict[str, AccountEntry]:
    """Fold changelog (key, value) records, in offset order, into account entries."""
    latest: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    slots: dict[str, list[tuple[int, str, bytes, bytes]]] = {}
    for key, value in latest.items():
        account_id = key.decode("utf-8", "surrogatepass").rpartition("#")[0]
        try:
            slots.setdefault(account_id, []).append(decode_value(value))
        except ValueError:
            logger.warning("skipping corrupt changelog record for key %r", key)
    accounts = {}
    for account_id, items in slots.items():
        items.sort(key=lambda item: item[0])
        last_snapshot = max((i for i, item in enumerate(items) if item[2]), default=None)
        if last_snapshot is None:
            if items[0][0] != 1:
                logger.warning("account %s: changelog lacks a snapshot and its first transactions; "
                               "its state restarts from seq %d", account_id, items[0][0])
            pending = PendingState(None, tuple(raw for *_, raw in items))
        else:
            pending = PendingState(items[last_snapshot][2], tuple(raw for *_, raw in items[last_snapshot + 1:]))
        recent = deque(((tid, raw) for _, tid, _, raw in items[-ring_size:]), maxlen=ring_size)
        snapshot_seq = items[last_snapshot][0] if last_snapshot is not None else items[0][0] - 1
        accounts[account_id] = AccountEntry(items[-1][0], pending, recent, {tid for tid, _ in recent}, snapshot_seq)
    return accounts


class ChangelogReader:
    """Reads changelog partitions back (read_committed) when this process gains them."""

    def __init__(self, bootstrap: str, topic: str, ring_size: int, open_tx_timeout_s: float = 60.0,
                 leader_timeout_s: float = 180.0, client: Callable[[str], KafkaConsumer] | None = None):
        self.topic = topic
        self.ring_size = ring_size
        self.open_tx_timeout_s = open_tx_timeout_s
        #: how long a restore is read again after kafka-python timed out for want of a partition leader (a broker
        #: died and leadership is moving); each attempt itself waits up to the client's request timeout
        self.leader_timeout_s = leader_timeout_s
        common = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=50)
        #: a new client for an isolation level (``read_committed`` / ``read_uncommitted``)
        self._client = client or (lambda isolation: KafkaConsumer(isolation_level=isolation, **common))
        self._open()

    def _open(self) -> None:
        self._committed = self._client("read_committed")
        self._uncommitted = self._client("read_uncommitted")

    def _reopen(self) -> None:
        """New clients: after a broker came back, a kafka-python client that timed out while it was down can
        keep timing out (seen in the broker-loss test: five 30 s timeouts in a row while a new client
        answered at once), so each retry starts from fresh metadata and connections."""
        for client in (self._committed, self._uncommitted):
            try:
                client.close(autocommit=False)
            except Exception as exc:  # a client in a bad state is dropped anyway
                logger.info("closing a changelog reader client: %s", exc)
        self._open()

    def _wait_no_open_transaction(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Until the last stable offset reaches the high watermark (a crashed owner's
        transaction is committed or aborted by the broker), return the end offsets."""
        deadline = time.monotonic() + self.open_tx_timeout_s
        while True:
            stable = self._committed.end_offsets(tps)
            high = self._uncommitted.end_offsets(tps)
            if all(stable[tp] >= high[tp] for tp in tps):
                return stable
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog {tps} still has an open transaction after {self.open_tx_timeout_s} s")
            logger.info("changelog %s has an open transaction (a crashed scorer's); waiting for the broker "
                        "to resolve it", [tp.partition for tp in tps if stable[tp] < high[tp]])
            time.sleep(0.5)

    def restore(self, partitions: list[int]) -> dict[int, dict[str, AccountEntry]]:
        """Rebuild the accounts of these partitions.  Raises TimeoutError if an open
        transaction does not resolve within ``open_tx_timeout_s``, or no leader answers the end-offset
        lookup within ``leader_timeout_s`` (a read that timed out is started again until then)."""
        if not partitions:
            return {}
        leader_deadline = time.monotonic() + self.leader_timeout_s
        while True:
            try:
                return self._restore_once(partitions)
            except KafkaTimeoutError as exc:  # no leader answered: a broker is down and leadership is moving
                self._reopen()
                if time.monotonic() > leader_deadline:
                    raise TimeoutError(f"changelog {partitions}: no partition leader answered for "
                                       f"{self.leader_timeout_s:.0f} s") from exc
                logger.warning("changelog %s: reading timed out (%s); a broker may be down, reading again",
                               partitions, exc)
                time.sleep(0.5)

    def _restore_once(self, partitions: list[int]) -> dict[int, dict[str, AccountEntry]]:
        started = time.monotonic()
        tps = [TopicPartition(self.topic, p) for p in partitions]
        end = self._wait_no_open_transaction(tps)
        consumer = self._committed
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
        while pending:
            for tp, batch in consumer.poll(timeout_ms=200, max_records=50_000).items():
                records[tp.partition].extend((r.key, r.value) for r in batch)
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
        consumer.assign([])
        out = {p: rebuild(records[p], self.ring_size) for p in partitions}
        logger.info("restored account state of partitions %s: %d accounts from %d changelog records in %.2f s",
                    partitions, sum(len(a) for a in out.values()), sum(len(r) for r in records.values()),
                    time.monotonic() - started)
        return out

    def close(self) -> None:
        self._committed.close()
        self._uncommitted.close()
