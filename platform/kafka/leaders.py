"""Log partition leader changes seen by a confluent-kafka (librdkafka) client.

librdkafka follows a new partition leader silently (its leader-change lines are
debug logs, off unless ``debug=topic`` is set, which would flood the log and
cost the poll loop).  Its statistics, though, name each known partition's
leader.  :class:`LeaderWatch` is a ``stats_cb``: given every
``statistics.interval.ms`` (on the thread that polls the client, between two
polls, never per record), it compares each partition's leader with the one it
saw last and logs every change at WARNING: ``partition leader changed:
transactions[2] broker 2 -> 3``.  A partition without a leader (-1: election in
progress) is logged too, so a broker loss reads as "2 -> -1", then "-1 -> 3".

Rules: the first sighting of a partition is not a change (nothing is logged);
the internal "unassigned" partition (-1) is ignored; a statistics document that
cannot be parsed is logged once at DEBUG and skipped (never raised into the
client's poll).
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger(__name__)

#: Often enough to date a failover to the second, rarely enough to cost nothing (one small JSON parse).
STATS_INTERVAL_MS = 1000


class LeaderWatch:
    def __init__(self, log: logging.Logger | None = None, client: str = "kafka client"):
        self.log = log or logger
        self.client = client
        self.leaders: dict[tuple[str, int], int] = {}
        self.changes = 0

    def client_config(self) -> dict:
        """The librdkafka settings that feed this watch."""
        return {"stats_cb": self, "statistics.interval.ms": STATS_INTERVAL_MS}

    def __call__(self, stats_json: str) -> None:
        try:
            topics = json.loads(stats_json).get("topics", {})
        except ValueError:
            self.log.debug("%s: unreadable statistics skipped", self.client)
            return
        for topic, info in topics.items():
            for p, part in info.get("partitions", {}).items():
                partition = int(p)
                if partition < 0:
                    continue
                leader = int(part.get("leader", -1))
                before = self.leaders.get((topic, partition))
                self.leaders[(topic, partition)] = leader
                if before is not None and before != leader:
                    self.changes += 1
                    self.log.warning("%s: partition leader changed: %s[%d] broker %d -> %d", self.client, topic,
                                     partition, before, leader)


__all__ = ["STATS_INTERVAL_MS", "LeaderWatch"]
