"""A steady-rate transaction feed for demos: ``python -m npusuite.fraud.service.feed``.

Reads a transactions JSONL (``npusuite fraud generate``), strips any inline
labels, and produces each transaction to ``transactions`` keyed by
account_id at ``--rate`` per second.  At the end of the file it starts again
with the timestamps moved on by the file's time span and the ids suffixed
with the round number, so accounts' streams stay in time order and every
transaction_id stays unique.  SIGTERM stops it after a flush.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from npusuite.fraud.service.messages import TRANSACTION_FIELDS

logger = logging.getLogger(__name__)


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def feed(bootstrap: str, path: Path, topic: str, rate_per_s: float, stop: dict) -> int:
    from kafka import KafkaProducer

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no transactions")
    stamps = [_epoch(r["timestamp"]) for r in rows]
    span_s = max(stamps) - min(stamps) + 1.0
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    sent, started, last_log = 0, time.monotonic(), time.monotonic()
    round_no = 0
    while not stop["now"]:
        for row, t in zip(rows, stamps, strict=True):
            if stop["now"]:
                break
            tx = {k: row.get(k) for k in TRANSACTION_FIELDS}
            if round_no:
                tx["transaction_id"] = f"{tx['transaction_id']}-r{round_no}"
                tx["timestamp"] = datetime.fromtimestamp(t + round_no * span_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            producer.send(topic, key=tx["account_id"].encode(), value=json.dumps(tx).encode())
            sent += 1
            delay = started + sent / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                logger.info("fed %d transactions (%.0f/s)", sent, sent / (last_log - started))
        round_no += 1
    producer.flush()
    producer.close()
    return sent


def main() -> None:
    from npusuite.platform import logs
    from npusuite.platform.settings import KafkaSettings, LogSettings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=None, help="default: KAFKA_BOOTSTRAP, else 127.0.0.1:9092")
    ap.add_argument("--input", type=Path, required=True, help="transactions JSONL")
    ap.add_argument("--topic", default="transactions")
    ap.add_argument("--rate", type=float, default=100.0, help="transactions per second")
    args = ap.parse_args()
    settings = LogSettings()
    logs.configure(settings.level, settings.format)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    bootstrap = args.bootstrap or KafkaSettings().bootstrap or "127.0.0.1:9092"
    sent = feed(bootstrap, args.input, args.topic, args.rate, stop)
    logger.info("feed stopped after %d transactions", sent)


if __name__ == "__main__":
    main()
