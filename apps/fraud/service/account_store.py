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
keeps each account's newest state plus its last ``R`` transactions):

* key   ``<account_id>#<seq mod R>`` (a ring of ``R`` slots per account);
* value ``>QHI`` (seq, len(transaction_id), len(state)) + transaction_id +
  state bytes + the transaction's original JSON bytes.

``seq`` counts the account's transactions, so on restore the slot with the
highest ``seq`` carries the current state, and the slots sorted by ``seq`` are
the account's recent transactions, oldest first.

Rules:

* :meth:`AccountStore.stage` never touches the committed view; staged
  updates are applied by :meth:`commit` only after the Kafka transaction
  committed, and dropped by :meth:`discard` after an abort.
* :func:`restore_partition` must be called only when no open transaction
  can still write to that changelog partition (it waits for that itself).
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">QHI")


@dataclass
class AccountEntry:
    """What the scorer knows about one account."""

    seq: int = 0
    #: The scorer's state object, or its bytes until first used (restores decode lazily).
    state: object | None = None
    #: (transaction_id, original bytes), oldest first.
    recent: deque = field(default_factory=deque)


def encode_value(seq: int, transaction_id: str, state: bytes, raw: bytes) -> bytes:
    tid = transaction_id.encode()
    return _HEADER.pack(seq, len(tid), len(state)) + tid + state + raw


def decode_value(value: bytes) -> tuple[int, str, bytes, bytes]:
    """Returns (seq, transaction_id, state, raw transaction bytes).  Raises ValueError on a corrupt record."""
    if len(value) < _HEADER.size:
        raise ValueError("changelog record shorter than its header")
    seq, tid_len, state_len = _HEADER.unpack_from(value)
    start = _HEADER.size
    tid = value[start:start + tid_len].decode()
    state = value[start + tid_len:start + tid_len + state_len]
    raw = value[start + tid_len + state_len:]
    return seq, tid, bytes(state), bytes(raw)


class AccountStore:
    """Committed account state of the partitions this process owns, plus one staged batch."""

    def __init__(self, ring_size: int = 20):
        self.ring_size = max(1, ring_size)
        self.partitions: dict[int, dict[str, AccountEntry]] = {}
        self._staged: dict[tuple[int, str], AccountEntry] = {}

    def owns(self, partition: int) -> bool:
        return partition in self.partitions

    def set_partition(self, partition: int, accounts: dict[str, AccountEntry]) -> None:
        self.partitions[partition] = accounts

    def drop_partition(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def current(self, partition: int, account_id: str) -> AccountEntry:
        """The staged entry if this batch touched the account, else the committed one (or a new one)."""
        staged = self._staged.get((partition, account_id))
        if staged is not None:
            return staged
        return self.partitions[partition].get(account_id) or AccountEntry()

    def stage(self, partition: int, account_id: str, transaction_id: str, state: object, state_bytes: bytes,
              raw: bytes) -> tuple[bytes, bytes]:
        """Record one scored transaction; returns the changelog (key, value)."""
        prev = self.current(partition, account_id)
        seq = prev.seq + 1
        recent = deque(prev.recent, maxlen=self.ring_size)
        recent.append((transaction_id, raw))
        self._staged[(partition, account_id)] = AccountEntry(seq, state, recent)
        key = f"{account_id}#{seq % self.ring_size}".encode()
        return key, encode_value(seq, transaction_id, state_bytes, raw)

    def commit(self) -> None:
        for (partition, account_id), entry in self._staged.items():
            accounts = self.partitions.get(partition)
            if accounts is not None:  # the partition may have been revoked meanwhile
                accounts[account_id] = entry
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()


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
        account_id = key.decode().rpartition("#")[0]
        try:
            slots.setdefault(account_id, []).append(decode_value(value))
        except ValueError:
            logger.warning("skipping corrupt changelog record for key %r", key)
    accounts = {}
    for account_id, items in slots.items():
        items.sort(key=lambda item: item[0])
        seq, _, state, _ = items[-1]
        recent = deque(((tid, raw) for _, tid, _, raw in items[-ring_size:]), maxlen=ring_size)
        accounts[account_id] = AccountEntry(seq, state, recent)
    return accounts


class ChangelogReader:
    """Reads changelog partitions back (read_committed) when this process gains them."""

    def __init__(self, bootstrap: str, topic: str, ring_size: int, open_tx_timeout_s: float = 60.0):
        self.topic = topic
        self.ring_size = ring_size
        self.open_tx_timeout_s = open_tx_timeout_s
        common = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=50)
        self._committed = KafkaConsumer(isolation_level="read_committed", **common)
        self._uncommitted = KafkaConsumer(isolation_level="read_uncommitted", **common)

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
        transaction does not resolve within ``open_tx_timeout_s``."""
        if not partitions:
            return {}
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
