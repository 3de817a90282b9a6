"""The fraud demo step: train small models once, run the live scorer, feed it at a steady rate.

1. ``fraud generate`` (300 accounts, 20 days, 2% fraud so both splits hold some) and ``fraud train`` into the
   demo's model repository (once; skipped when ``fraud-fast`` exists there);
2. ``fraud train-novelty --sequence`` (once): the novelty tier, an isolation forest and a GRU over each
   account's previous 8 transactions, trained on the legitimate transactions only, as ``fraud-novelty``;
3. ``fraud run --novelty-model fraud-novelty`` consuming ``transactions`` (metrics on port 9400, or a free one);
4. the feed (:mod:`npusuite.fraud.service.feed`) producing the generated
   transactions to ``transactions`` at 50/s, forever, keyed by account_id.

Scores land in ``fraud-scores``, alerts in ``fraud-alerts`` (the review app
turns them into cases), bad messages in ``transactions-dlq``.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from npusuite.platform.demo import DemoContext, Service
from npusuite.platform.kafka.broker import free_port, port_is_free

FEED_RATE_PER_S = 50


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def step(ctx: DemoContext) -> None:
    work = ctx.workdir / "fraud"
    data = work / "data"
    ctx.prepare("fraud: generate transactions", data / "transactions.jsonl",
                "fraud", "generate", "--out", str(data), "--accounts", "300", "--days", "20", "--seed", "1",
                "--fraud-rate", "0.02")
    ctx.prepare("fraud: train the fast and LLM verdict models", ctx.model_root / "fraud-fast",
                "fraud", "train", "--data", str(data / "transactions.jsonl"), "--labels", str(data / "labels.jsonl"),
                "--out", str(work / "model"), "--model-root", str(ctx.model_root), "--llm-steps", "30",
                "--epochs", "4")
    ctx.prepare("fraud: train the novelty tier (forest + sequence, legitimate transactions only)",
                ctx.model_root / "fraud-novelty",
                "fraud", "train-novelty", "--data", str(data / "transactions.jsonl"), "--labels",
                str(data / "labels.jsonl"), "--out", str(work / "novelty"), "--model-root", str(ctx.model_root),
                "--sequence")
    port = 9400 if port_is_free(9400) else free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    ctx.start("fraud-scorer", "fraud", "run", "--bootstrap", ctx.bootstrap, "--model", "fraud-fast",
              "--model-root", str(ctx.model_root), "--novelty-model", "fraud-novelty", "--instance-id", "demo-0",
              "--metrics-port", str(port),
              url=metrics, ready=lambda: _serving(metrics))
    ctx.expose_metrics("npusuite-fraud", metrics)
    log = ctx.workdir / "logs" / "fraud-feed.log"
    proc = subprocess.Popen([sys.executable, "-m", "npusuite.fraud.service.feed", "--bootstrap", ctx.bootstrap,
                             "--input", str(data / "transactions.jsonl"), "--rate", str(FEED_RATE_PER_S)],
                            cwd=ctx.workdir, stdin=subprocess.DEVNULL, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    ctx.services.append(Service("fraud-feed", proc, None, log))
    ctx.notes.append(f"fraud        {FEED_RATE_PER_S} tx/s -> transactions -> fraud run (+ novelty tier with the "
                     f"account's sequence) -> fraud-scores, fraud-alerts; metrics {metrics}")
