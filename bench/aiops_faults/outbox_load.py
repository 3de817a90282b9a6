"""A real edge outbox under a steady load, its metrics on /metrics (run by bench/aiops.py, live slow disk).

What runs: :class:`npusuite.edge.outbox.Outbox` (SQLite WAL, ``synchronous=FULL``: an fsync per
commit) with a prometheus_client HTTP server on its registry; one thread ``put``s ``--rate`` results
a second (1 in 50 NG), as the line's result sink does; another claims and acks what is pending
every ``--deliver-every`` seconds (an upstream that always accepts: no network). It is not the edge
agent (no camera, no fleet, no uploader); the outbox and its metrics are the agent's own code.
Under the bench, the process runs with ``LD_PRELOAD=fsync_delay.so`` (the slow disk).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from prometheus_client import start_http_server

from npusuite.edge.outbox import Outbox, OutboxConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--deliver-every", type=float, default=1.0)
    ap.add_argument("--deliver-batch", type=int, default=100)
    args = ap.parse_args()
    outbox = Outbox(OutboxConfig(args.db, fsync="full"))
    start_http_server(args.port, addr="127.0.0.1", registry=outbox.registry)
    stop = threading.Event()

    def deliver() -> None:
        while not stop.wait(args.deliver_every):
            outbox.ack(r.id for r in outbox.claim(args.deliver_batch))

    threading.Thread(target=deliver, daemon=True).start()
    print("outbox ready", flush=True)
    start, i = time.monotonic(), 0
    try:
        while True:  # a steady arrival rate; a slow put delays the next ones (the line's sink blocks too)
            due = start + i / args.rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            outbox.put(f"r{i}", i % 50 == 0, {"frame": i, "score": 0.1, "t": time.time()})
            i += 1
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        outbox.close()


if __name__ == "__main__":
    main()
