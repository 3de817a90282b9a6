"""The ``fraud-alerts`` consumer that runs beside the web app, in its process.

Rules:

- At-least-once from Kafka, exactly-once in effect: offsets are committed
  only after the batch's cases are committed to the database, and a repeated
  alert (same transaction_id) is recognised by ingest and changes nothing.
- A message that is not a valid alert is not retried: it goes to the
  dead-letter topic (``<topic>-dlq`` by default) with its key and value bytes
  untouched and the reason and source position as headers
  ``npusuite.dlq.reason`` and ``npusuite.dlq.source`` (``topic/partition@offset``),
  the same convention as the fraud scorer's ``transactions-dlq``; consumption
  goes on.  A database error is retried (the batch is not committed) after a pause.
- :meth:`AlertConsumer.stop` finishes the batch in hand and closes cleanly.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from npusuite.platform.errors import SchemaError
from npusuite.review.config import ReviewConfig
from npusuite.review.ingest import ingest_fraud_alert, parse_fraud_alert

logger = logging.getLogger(__name__)

DLQ_REASON_HEADER = "npusuite.dlq.reason"
DLQ_SOURCE_HEADER = "npusuite.dlq.source"


@dataclass
class ConsumerStats:
    created: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    db_errors: int = 0


class AlertConsumer:
    """Consumes TOPIC with group GROUP_ID into cases, in a daemon thread."""

    def __init__(self, bootstrap: str, sessions: sessionmaker[Session], cfg: ReviewConfig,
                 topic: str = "fraud-alerts", group_id: str = "npusuite-review", dlq_topic: str | None = None,
                 poll_timeout_ms: int = 500, retry_pause_s: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.sessions = sessions
        self.cfg = cfg
        self.topic = topic
        self.group_id = group_id
        self.dlq_topic = dlq_topic or f"{topic}-dlq"
        self.poll_timeout_ms = poll_timeout_ms
        self.retry_pause_s = retry_pause_s
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_forever, name="review-alert-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
            except Exception:
                logger.exception("alert consumer failed; restarting in %.0f s", self.retry_pause_s)
                self._stop.wait(self.retry_pause_s)

    def _run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=self.group_id,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 client_id="npusuite-review")
        logger.info("consuming %s from %s as group %s", self.topic, self.bootstrap, self.group_id)
        try:
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=self.poll_timeout_ms)
                if not batch:
                    continue
                records = [r for part in batch.values() for r in part]
                if self._handle(records):
                    consumer.commit()
                else:
                    # Rewind so the batch is read again after the pause; nothing was committed.
                    for tp, part in batch.items():
                        consumer.seek(tp, part[0].offset)
                    self._stop.wait(self.retry_pause_s)
        finally:
            consumer.close(autocommit=False)
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None

    def _handle(self, records: list) -> bool:
        """Ingest RECORDS; True when all are stored or dead-lettered, False on a database error."""
        with self.sessions() as db:
            for rec in records:
                try:
                    alert = parse_fraud_alert(rec.value if rec.value is not None else b"")
                except SchemaError as exc:
                    self._dead_letter(rec, str(exc))
                    continue
                try:
                    result = ingest_fraud_alert(db, alert, f"kafka:{self.topic}", self.cfg)
                except SQLAlchemyError:
                    db.rollback()
                    self.stats.db_errors += 1
                    logger.exception("database error while storing alert %s; will retry", alert.transaction_id)
                    return False
                if result.created:
                    self.stats.created += 1
                else:
                    self.stats.duplicates += 1
        return True

    def _dead_letter(self, rec, reason: str) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                           client_id="npusuite-review-dlq")
        headers = [(DLQ_REASON_HEADER, reason.encode()),
                   (DLQ_SOURCE_HEADER, f"{rec.topic}/{rec.partition}@{rec.offset}".encode())]
        self._producer.send(self.dlq_topic, key=rec.key, value=rec.value, headers=headers).get(timeout=30)
        self.stats.dead_letters += 1
        logger.warning("alert at %s[%d]@%d dead-lettered to %s: %s", rec.topic, rec.partition, rec.offset,
                       self.dlq_topic, reason)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll PREDICATE until true or TIMEOUT_S passes (a helper for callers and tests)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
