"""Upload the outbox upstream: to the review app's ingest (HTTP) or to Kafka.

Rules:

* The syncer only ever reads from the outbox and acknowledges what the
  upstream confirmed; it never deletes anything it has not seen confirmed.
* Ids are the idempotency keys: a record is resent with the same id after a
  timeout, a lost link or a crash between send and ack, and the upstream
  answers "already have it" (HTTP 200 ``created: false``), which counts as
  delivered.
* Failures are split by whose fault they are.  Network errors, 5xx, 401/403
  (a token problem an operator fixes), 408 and 429 are *retried* with
  exponential backoff and jitter, per record.  Any other 4xx means the record
  itself is bad: it goes to the outbox's dead letters with the reason.
* Kafka: records are produced with ``acks=all``, key = id; they are acked in
  the outbox only after the broker confirmed them.  A crash between the two
  resends, so Kafka consumers must dedupe by id (the review app does).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from npusuite.edge.outbox import Outbox, OutboxRecord

logger = logging.getLogger(__name__)

INGEST_PATH = "/api/ingest/inspections"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one sent record."""

    id: str
    ok: bool  # the upstream has it (new or repeat)
    permanent: bool = False  # not ok and retrying will not help: dead-letter it
    error: str | None = None


class Sink(Protocol):
    """Where results go.  ``send`` never raises for per-record problems; it reports them."""

    def send(self, records: list[OutboxRecord]) -> list[Delivery]: ...

    def close(self) -> None: ...


_RETRYABLE_4XX = {401, 403, 408, 409, 425, 429}


class HttpIngestSink:
    """POST each record to ``{review_url}/api/ingest/inspections`` with a bearer service token.

    The review app turns every record into a case for QC engineers, so by default only NG results
    are sent there (``send_ok=False``): OK results count as delivered without a request
    (``skipped_ok``).  Kafka gets everything.
    """

    def __init__(self, review_url: str, token: str, timeout_s: float = 10.0,
                 client: httpx.Client | None = None, send_ok: bool = False) -> None:
        self.url = review_url.rstrip("/") + INGEST_PATH
        self.send_ok = send_ok
        self.skipped_ok = 0
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, records: list[OutboxRecord]) -> list[Delivery]:
        out: list[Delivery] = []
        for i, rec in enumerate(records):
            if not rec.defective and not self.send_ok:
                self.skipped_ok += 1
                out.append(Delivery(rec.id, ok=True))
                continue
            try:
                resp = self._client.post(self.url, json=rec.payload, headers=self._headers)
            except httpx.HTTPError as exc:
                # The link is down: the rest of the batch would fail the same way.
                err = f"{type(exc).__name__}: {exc}"
                out.extend(Delivery(r.id, ok=False, error=err) for r in records[i:])
                return out
            if resp.status_code in (200, 201):
                out.append(Delivery(rec.id, ok=True))
            elif 400 <= resp.status_code < 500 and resp.status_code not in _RETRYABLE_4XX:
                out.append(Delivery(rec.id, ok=False, permanent=True,
                                    error=f"HTTP {resp.status_code}: {resp.text[:300]}"))
            else:
                out.append(Delivery(rec.id, ok=False, error=f"HTTP {resp.status_code}"))
        return out

    def close(self) -> None:
        self._client.close()


class KafkaSink:
    """Produce each record's payload as JSON to ``topic`` with key = id, ``acks=all``."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float = 30.0) -> None:
        from kafka import KafkaProducer  # imported here: only Kafka users pay for it

        self.topic = topic
        self.timeout_s = timeout_s
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)

    def send(self, records: list[OutboxRecord]) -> list[Delivery]:
        futures = [(r.id, self._producer.send(self.topic, key=r.id.encode(),
                                              value=json.dumps(r.payload, separators=(",", ":")).encode()))
                   for r in records]
        self._producer.flush(timeout=self.timeout_s)
        out = []
        for rid, fut in futures:
            try:
                fut.get(timeout=self.timeout_s)
                out.append(Delivery(rid, ok=True))
            except Exception as exc:  # any producer error is retryable from here
                out.append(Delivery(rid, ok=False, error=f"{type(exc).__name__}: {exc}"))
        return out

    def close(self) -> None:
        self._producer.close(timeout=5)


@dataclass(frozen=True, slots=True)
class SyncConfig:
    batch_size: int = 32
    idle_poll_s: float = 0.2
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    #: delivered ids are remembered this long (they stop a restarted agent re-recording old frames)
    delivered_retention_s: float = 7 * 24 * 3600.0
    prune_every_s: float = 600.0


@dataclass
class SyncStatus:
    sent: int = 0
    failed_attempts: int = 0
    link_up: bool | None = None
    last_error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def backoff_s(attempts: int, config: SyncConfig, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [base/2, base], base = initial * 2**attempts, capped."""
    base = min(config.backoff_max_s, config.backoff_initial_s * (2 ** min(attempts, 30)))
    return rng.uniform(base / 2, base)


class Syncer:
    """Background thread: claim -> send -> ack / retry later / dead-letter."""

    def __init__(self, outbox: Outbox, sink: Sink, config: SyncConfig | None = None,
                 rng: random.Random | None = None) -> None:
        self.outbox = outbox
        self.sink = sink
        self.config = config or SyncConfig()
        self.status = SyncStatus()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Syncer:
        self._thread = threading.Thread(target=self._run, name="edge-sync", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.sink.close()

    def sync_once(self) -> int:
        """Send one batch; returns how many records the upstream confirmed."""
        batch = self.outbox.claim(self.config.batch_size)
        if not batch:
            return 0
        by_id = {r.id: r for r in batch}
        deliveries = self.sink.send(batch)
        ok = [d.id for d in deliveries if d.ok]
        self.outbox.ack(ok)
        for d in deliveries:
            if d.ok:
                continue
            if d.permanent:
                self.outbox.dead_letter(d.id, d.error or "rejected")
            else:
                delay = backoff_s(by_id[d.id].attempts, self.config, self._rng)
                self.outbox.retry_later([d.id], delay, d.error or "failed")
        failed = [d for d in deliveries if not d.ok and not d.permanent]
        self.status.sent += len(ok)
        self.status.failed_attempts += len(failed)
        if failed:
            if self.status.link_up is not False:
                logger.warning("upstream unavailable (%s); %d results held for retry", failed[0].error, len(failed))
            self.status.link_up = False
            self.status.last_error = failed[0].error
        elif ok:
            if self.status.link_up is False:
                logger.info("upstream reachable again")
            self.status.link_up = True
        return len(ok)

    def _run(self) -> None:
        next_prune = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_prune:
                pruned = self.outbox.prune_delivered(self.config.delivered_retention_s)
                if pruned:
                    logger.info("forgot %d delivered ids older than %.0f s", pruned,
                                self.config.delivered_retention_s)
                next_prune = time.monotonic() + self.config.prune_every_s
            try:
                n = self.sync_once()
            except Exception:  # the thread must outlive any one bad batch
                logger.exception("sync batch failed")
                n = 0
            if n == 0:
                self._wake.wait(self.config.idle_poll_s)
                self._wake.clear()
