"""Posting NG results to the review app (``POST /api/ingest/inspections``).

Rules:

* Each NG inspection becomes one
  :class:`~npusuite.platform.contracts.inspection.InspectionResult` (the
  record the edge agent and the review app use too; see ``docs/contracts.md``)
  with a stable idempotency ``id`` (``<line>:<capture time in µs>:<seq>``), so
  a retry after a lost answer never creates a second case: the review app
  answers 201 the first time and 200 with ``"created": false`` for a repeat.
  Its heatmap is the colour overlay on the frame.
* Posting happens on one background thread from a bounded queue; when the
  queue is full the *oldest* pending post is dropped and counted (the NG
  archive on disk still holds the record).  A failed post (network error or
  5xx) is retried with backoff up to ``max_attempts``; a 4xx answer is a
  permanent refusal, logged with the app's error and not retried.
* The service token is sent as ``Authorization: Bearer`` and never logged.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

from npusuite.inspection.archive import encode_png
from npusuite.inspection.inspector import heatmap_overlay
from npusuite.inspection.records import Inspection
from npusuite.platform.contracts.inspection import InspectionResult, build_inspection_result

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewConfig:
    url: str
    token: str
    line: str = "line-1"
    timeout_s: float = 10.0
    max_pending: int = 256
    max_attempts: int = 5
    retry_initial_s: float = 0.5

    def __repr__(self) -> str:  # never show the token
        return f"ReviewConfig(url={self.url!r}, line={self.line!r})"


def ingest_body(inspection: Inspection, line: str) -> InspectionResult:
    """The review app's ingest record for one inspection."""
    ts_us = int(round(inspection.frame.timestamp * 1e6))
    return build_inspection_result(inspection, record_id=f"{line}:{ts_us}:{inspection.frame.seq}", line=line,
                                   image_png=encode_png(inspection.frame.image),
                                   heatmap_png=encode_png(heatmap_overlay(inspection)))


@dataclass
class ReviewStats:
    posted: int = 0
    duplicates: int = 0
    refused: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0


class ReviewPoster:
    """Background poster of NG inspections to the review app."""

    def __init__(self, cfg: ReviewConfig, client=None) -> None:
        import httpx

        self.cfg = cfg
        self._client = client or httpx.Client(timeout=cfg.timeout_s)
        self._pending: collections.deque[InspectionResult] = collections.deque()
        self._cond = threading.Condition()
        self._stats = ReviewStats()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="review-poster", daemon=True)
        self._thread.start()

    def stats(self) -> ReviewStats:
        with self._cond:
            return ReviewStats(**{**self._stats.__dict__, "pending": len(self._pending)})

    def submit(self, inspection: Inspection) -> None:
        body = ingest_body(inspection, self.cfg.line)
        with self._cond:
            if len(self._pending) >= self.cfg.max_pending:
                self._pending.popleft()
                self._stats.dropped += 1
            self._pending.append(body)
            self._cond.notify_all()

    def _post(self, body: InspectionResult) -> None:
        url = self.cfg.url.rstrip("/") + "/api/ingest/inspections"
        delay = self.cfg.retry_initial_s
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                resp = self._client.post(url, content=body.model_dump_json(),
                                         headers={"Authorization": f"Bearer {self.cfg.token}",
                                                  "Content-Type": "application/json"})
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code in (200, 201):
                    created = resp.json().get("created", resp.status_code == 201)
                    with self._cond:
                        if created:
                            self._stats.posted += 1
                        else:
                            self._stats.duplicates += 1
                    return
                if 400 <= resp.status_code < 500:
                    with self._cond:
                        self._stats.refused += 1
                    logger.error("review app refused NG %s: HTTP %d %s", body.id, resp.status_code,
                                 resp.text[:200])
                    return
                error = f"HTTP {resp.status_code}"
            if attempt < self.cfg.max_attempts and not self._closing:
                logger.warning("posting NG %s to the review app failed (%s); retry %d in %.1f s", body.id, error,
                               attempt, delay)
                time.sleep(delay)
                delay *= 2
        with self._cond:
            self._stats.failed += 1
        logger.error("giving up posting NG %s to the review app after %d attempts", body.id,
                     self.cfg.max_attempts)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait(0.5)
                if not self._pending:
                    return
                body = self._pending.popleft()
            self._post(body)

    def close(self, timeout_s: float = 30.0) -> None:
        """Post what is pending (bounded by ``timeout_s``), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        self._client.close()
