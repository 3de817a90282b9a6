"""A CPU-bound neighbour process with a duty cycle the bench raises over time (live LLM latency creep).

Every 100 ms period it spins for ``duty`` x 100 ms and sleeps for the rest; ``duty`` (0..1) is read
from ``--duty-file`` each period.  Real contention for the cores the platform server runs on:
nothing is injected into the server.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

PERIOD_S = 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duty-file", type=Path, required=True)
    args = ap.parse_args()
    x = 0
    while True:
        try:
            duty = min(max(float(args.duty_file.read_text() or 0), 0.0), 1.0)
        except (OSError, ValueError):
            duty = 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < duty * PERIOD_S:
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF  # busy work
        rest = PERIOD_S - (time.perf_counter() - start)
        if rest > 0:
            time.sleep(rest)


if __name__ == "__main__":
    main()
