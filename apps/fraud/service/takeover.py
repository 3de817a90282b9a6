"""Zone takeover: score a lost zone's accounts in this zone, from MirrorMaker 2's copies of its topics.

In the dual-active deployment (docs/kafka.md) each zone scores the accounts
whose home it is (:func:`npusuite.platform.kafka.zones.home_zone`), with the
same group name and topic names on its own cluster, and MirrorMaker 2 copies
each zone's ``transactions`` and ``<group>-account-state`` to the other zone
as ``<zone>.transactions`` and ``<zone>.<group>-account-state``.

``npusuite fraud run --takeover-zone A`` (in zone B, against B's cluster):

* consumes ``A.<transactions>``, and reads *and writes* its account state in
  ``A.<group>-account-state``: the state restored for partition ``p`` is what
  zone A had committed and MirrorMaker had copied, and from then on this
  scorer is that changelog's only writer (MirrorMaker writes to it no more:
  zone A is gone);
* runs as consumer group ``<group>-takeover-A`` (zone B's own scorers already
  use ``<group>`` on this cluster), transactional ids ``<group>-takeover-A-<instance>``;
* writes scores, alerts and dead letters to this zone's usual output topics.

Where it starts (:func:`seed_offsets`, before the consumer joins; partitions
that already have a committed offset, i.e. a restarted takeover, keep it): for
each partition, right after the transaction whose record is the *last* one of
the mirrored changelog's partition.  The scorer wrote state and offsets in one
Kafka transaction, and MirrorMaker copies a partition in order, so that record
marks exactly how far the copied state goes: every transaction before it is in
the state, none after it.  Starting there neither applies a transaction to an
account twice nor skips one (MirrorMaker's translated group offsets could do
either, being taken at other moments than the copied state).  Costs: the
search reads ``A.<transactions>`` backwards from its end in windows of
``window`` records until it finds that transaction (near the end in practice:
the takeover point trails the copied inputs by the changelog's mirroring lag).

What a takeover cannot do, and who handles it:

* transactions zone A received but MirrorMaker had not copied are lost (the
  RPO), and ones A scored whose state was not yet copied are scored again:
  their scores, already committed in A and maybe mirrored as ``A.<scores>``,
  appear twice to a reader of both zones' scores, which de-duplicates by
  ``transaction_id`` (docs/kafka.md);
* a malformed record after the last good one of a partition is dead-lettered
  again (dead letters carry source topic/partition/offset: de-duplicate by those).

Refused with a UserError: the mirrored topics are missing in this cluster
(MirrorMaker never ran from that zone), or their partition counts differ.
"""

from __future__ import annotations

import json
import logging
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from npusuite.fraud.service.config import ServiceConfig, Topics
from npusuite.platform.contracts.account_state import VALUE_HEADER
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


def takeover_config(config: ServiceConfig, zone: str) -> ServiceConfig:
    """The configuration of a scorer taking over ``zone``'s accounts from their mirrored topics."""
    topics = config.topics
    mirrored = Topics(transactions=f"{zone}.{topics.transactions}", scores=topics.scores, alerts=topics.alerts,
                      dlq=topics.dlq, changelog=f"{zone}.{config.changelog_topic}")
    return config.model_copy(update={"group_id": f"{config.group_id}-takeover-{zone}", "topics": mirrored})


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "isolation.level": "read_committed", "enable.partition.eof": False})


def _partitions(consumer: Consumer, topic: str) -> int:
    meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise UserError(f"topic {topic!r} is not in this cluster: is MirrorMaker 2 mirroring that zone here?")
    return len(meta.partitions)


def _read(consumer: Consumer, topic: str, partition: int, start: int, end: int, timeout_s: float = 30.0) -> list:
    """Records of [start, end) (fewer where there are gaps: transaction markers, compaction)."""
    tp = TopicPartition(topic, partition, start)
    consumer.assign([tp])
    out = []
    deadline = time.monotonic() + timeout_s
    # consume(n, t) waits for n records or t seconds: short waits, and the position tells when [start, end) is read.
    while time.monotonic() < deadline:
        for m in consumer.consume(500, 0.1):
            if m.error() is None and m.offset() < end:
                out.append(m)
        if consumer.position([tp])[0].offset >= end:
            return out
    raise UserError(f"reading {topic}[{partition}] offsets {start}..{end} took over {timeout_s:.0f}s")


def last_state_transaction(consumer: Consumer, changelog: str, partition: int) -> str | None:
    """The transaction_id of the last record of the changelog partition (None: the partition is empty)."""
    low, high = consumer.get_watermark_offsets(TopicPartition(changelog, partition), timeout=30)
    for back in (64, 4096):  # the tail; further only when it is all markers or unreadable records
        records = _read(consumer, changelog, partition, max(low, high - back), high)
        for m in reversed(records):
            value = m.value() or b""
            if len(value) >= VALUE_HEADER.size:
                _seq, n_id, _n_snap = VALUE_HEADER.unpack_from(value)
                return value[VALUE_HEADER.size:VALUE_HEADER.size + n_id].decode()
        if high - back <= low:
            break
    return None


def find_offset(consumer: Consumer, topic: str, partition: int, transaction_id: str, window: int = 5000) -> int:
    """The offset of ``transaction_id`` in the partition, searched backwards from the end."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
    needle = transaction_id.encode()
    end = high
    while end > low:
        start = max(low, end - window)
        for m in _read(consumer, topic, partition, start, end):
            value = m.value() or b""
            if needle in value:
                try:
                    if json.loads(value).get("transaction_id") == transaction_id:
                        return m.offset()
                except (ValueError, AttributeError):
                    continue
        end = start
    raise UserError(f"transaction {transaction_id!r}, the last one in the mirrored state, is not in "
                    f"{topic}[{partition}]; the mirrored input and changelog do not belong together")


def seed_offsets(config: ServiceConfig) -> dict[int, int]:
    """Commit, for each partition without a committed offset, the offset right after the copied state's last
    transaction (0 where the copied state has none).  Returns what it committed."""
    topics = config.topics
    consumer = _consumer(config.bootstrap, config.group_id)
    try:
        n = _partitions(consumer, topics.transactions)
        m = _partitions(consumer, config.changelog_topic)
        if m != n:
            raise UserError(f"{config.changelog_topic!r} has {m} partitions but {topics.transactions!r} has {n}")
        committed = consumer.committed([TopicPartition(topics.transactions, p) for p in range(n)], timeout=30)
        todo = [tp.partition for tp in committed if tp.offset < 0]
        seeds: dict[int, int] = {}
        for p in todo:
            tid = last_state_transaction(consumer, config.changelog_topic, p)
            seeds[p] = 0 if tid is None else find_offset(consumer, topics.transactions, p, tid) + 1
            logger.info("takeover: %s[%d] starts at offset %d (after %s, the last transaction in the mirrored state)",
                        topics.transactions, p, seeds[p], tid or "nothing")
        if seeds:
            consumer.commit(offsets=[TopicPartition(topics.transactions, p, off) for p, off in seeds.items()],
                            asynchronous=False)
        kept = sorted(set(range(n)) - set(todo))
        if kept:
            logger.info("takeover: partitions %s resume from their committed offsets", kept)
        return seeds
    except KafkaException as exc:
        raise UserError(f"preparing the takeover failed: {exc}") from None
    finally:
        consumer.close()


__all__ = ["find_offset", "last_state_transaction", "seed_offsets", "takeover_config"]
