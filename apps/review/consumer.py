"""The ``fraud-alerts`` consumer that runs beside the web app, in its process.

Rules:

- At-least-once from Kafka, exactly-once in effect: offsets are committed
  only after the batch's cases are committed to the database, and a repeated
  alert (same transaction_id) is recognised by ingest and changes nothing.
- Poison isolation: no record stops its partition.  A record whose handling
  fails for a reason of its own (not a valid alert, a value the database
  refuses, or any other exception its content reaches) is not retried: it
  goes to the dead-letter topic (``<topic>-dlq`` by default) with its key and
  value bytes untouched and headers ``npusuite.dlq.reason`` (for an
  exception: its type and message, one line of at most 500 characters) and
  ``npusuite.dlq.source`` (``topic/partition@offset``), the same convention
  as the fraud scorer's ``transactions-dlq``; consumption goes on.
- A failure of the infrastructure (database unreachable or busy, broker
  unreachable; see :mod:`npusuite.review.failures`) is retried after a pause:
  the batch is not committed and is read again, so nothing accepted is lost,
  and the cases already stored from it are recognised as repeats.  A record
  may reach the dead-letter topic twice when the broker fails between the
  dead letter and the commit; it never becomes two cases.
- Alert reasons longer than a reason row are kept whole in the case's
  evidence and shortened, with a visible ``…``, in the reason list (see
  :mod:`npusuite.review.ingest`); they are not dead-lettered.
- :attr:`AlertConsumer.stats` says what it is doing (``state``: starting,
  consuming, retrying, stopped, failed; ``last_error``); ``/healthz`` and
  ``/readyz`` report it.  :meth:`AlertConsumer.stop` finishes the batch in
  hand and closes cleanly.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from npusuite.platform.contracts import dead_letter
from npusuite.platform.contracts.dead_letter import DeadLetterHeaders
from npusuite.platform.errors import SchemaError
from npusuite.review.config import ReviewConfig
from npusuite.review.failures import first_line, is_transient, one_line
from npusuite.review.ingest import IngestResult, ingest_fraud_alert, parse_fraud_alert

logger = logging.getLogger(__name__)

DLQ_REASON_HEADER = dead_letter.REASON_HEADER
DLQ_SOURCE_HEADER = dead_letter.SOURCE_HEADER
_DLQ_MAX_REQUEST_BYTES = 16 * 1024 * 1024


@dataclass
class ConsumerStats:
    created: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    #: Batches put back after a failure of the database or broker (retried, never dead-lettered).
    db_errors: int = 0
    #: Times the Kafka client was rebuilt after a failure.
    restarts: int = 0
    state: str = "stopped"
    last_error: str | None = None


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

    @property
    def ready(self) -> bool:
        """Alive and consuming (not waiting out a failure of the database or broker)."""
        return self.alive and self.stats.state == "consuming"

    def _run_forever(self) -> None:
        self.stats.state = "starting"
        try:
            while not self._stop.is_set():
                try:
                    self._run()
                except Exception as exc:
                    # Only the Kafka client can fail here (records are isolated in _handle): rebuild it.
                    self.stats.state, self.stats.last_error = "retrying", one_line(exc)
                    self.stats.restarts += 1
                    logger.exception("alert consumer failed; restarting in %.0f s", self.retry_pause_s)
                    self._stop.wait(self.retry_pause_s)
        except BaseException:
            self.stats.state = "failed"
            raise
        self.stats.state = "stopped"

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
                    self.stats.state = "consuming"
                    continue
                records = [r for part in batch.values() for r in part]
                if self._handle(records):
                    consumer.commit()
                    self.stats.state = "consuming"
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
        """Ingest RECORDS; True when all are stored or dead-lettered, False on a failure of the infrastructure."""
        with self.sessions() as db:
            for rec in records:
                try:
                    result = self._ingest(db, rec)
                except SchemaError as exc:
                    self._dead_letter(rec, str(exc))
                    continue
                except Exception as exc:
                    db.rollback()
                    if is_transient(exc):
                        self.stats.db_errors += 1
                        self.stats.state, self.stats.last_error = "retrying", one_line(exc)
                        logger.warning("alert at %s[%d]@%d hit a database or broker failure; will retry: %s",
                                       rec.topic, rec.partition, rec.offset, one_line(exc))
                        return False
                    # The record's own fault: retrying would fail the same way and stall the partition.
                    logger.exception("alert at %s[%d]@%d could not be stored", rec.topic, rec.partition, rec.offset)
                    self._dead_letter(rec, one_line(exc))
                    continue
                if result.created:
                    self.stats.created += 1
                else:
                    self.stats.duplicates += 1
        return True

    def _ingest(self, db: Session, rec) -> IngestResult:
        alert = parse_fraud_alert(rec.value if rec.value is not None else b"", max_bytes=self.cfg.max_ingest_bytes)
        return ingest_fraud_alert(db, alert, f"kafka:{self.topic}", self.cfg)

    def _dead_letter(self, rec, reason: str) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            # A dead letter carries the record whole: allow what the topic's broker accepts, plus headers.
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                           client_id="npusuite-review-dlq", max_request_size=_DLQ_MAX_REQUEST_BYTES)
        headers = DeadLetterHeaders.of(first_line(reason), rec.topic, rec.partition, rec.offset).to_kafka()
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
