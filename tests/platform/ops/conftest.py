"""A real Prometheus server over known, backfilled series (promtool), for ``npusuite ops`` tests.

The scenario ("hot device"): 3 h of history and a 30 min window at 30 s, with a 30 min season.
In the window, from ``ONSET``, the device's temperature ramps up by 25 C and the LLM's time to
first token doubles (a cascade: llm-tier depends on the device); the scorer's consumer lag and
throughput stay normal; the review backlog is flat.  ``load`` is a growing transactions rate for
the capacity advice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest

from npusuite.platform.observability import names as N
from npusuite.platform.observability.prometheus_server import PrometheusServer
from npusuite.platform.ops.backfill import Sample, create_blocks, write_openmetrics

STEP = 30.0
SEASON = 1800.0
HISTORY = 3 * 3600.0
WINDOW = 1800.0


@dataclass(frozen=True)
class Scenario:
    url: str
    end: float
    onset: float  # when the device starts heating


def _samples(t: np.ndarray, onset: float, rng: np.random.Generator) -> list[Sample]:
    n = t.size
    season = np.sin(2 * math.pi * t / SEASON)
    heat = np.clip((t - onset) / 300.0, 0, 1)
    temp = 60 + 5 * season + rng.normal(0, 0.4, n) + 25 * heat
    ttft = 0.3 * (1 + 0.1 * season) * np.exp(rng.normal(0, 0.03, n)) * (1 + heat)
    rate = 100 * (1 + 0.3 * season) * (1 + 0.3 * (t - t[0]) / (t[-1] - t[0]))  # tx/s, growing 30 %
    samples = [
        Sample(N.DEVICE_TEMPERATURE_CELSIUS, {"device": "0"}, t, temp),
        Sample(N.FRAUD_CONSUMER_LAG, {"partition": "0"}, t, np.maximum(40 + 10 * season + rng.normal(0, 3, n), 0)),
        Sample(N.FRAUD_TRANSACTIONS, {}, t, np.cumsum(rng.poisson(rate * STEP))),
        Sample(N.REVIEW_BACKLOG_CASES, {}, t, 100 + rng.normal(0, 2, n)),
    ]
    # the LLM's time to first token as histogram buckets (what histogram_quantile reads)
    from scipy.stats import norm

    events = np.full(n, 5.0 * STEP)
    for le in (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf):
        frac = np.ones(n) if math.isinf(le) else norm.cdf((math.log(le) - np.log(ttft)) / 0.2)
        samples.append(Sample(f"{N.LLM_TIME_TO_FIRST_TOKEN_SECONDS}_bucket", {"le": "+Inf" if math.isinf(le) else
                                                                               repr(le)}, t, np.cumsum(events * frac)))
    return samples


@pytest.fixture(scope="session")
def hot_device(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    work = tmp_path_factory.mktemp("prom-hot")
    end = math.floor(time.time() / STEP) * STEP - 600
    t = end - HISTORY - WINDOW - 600 + STEP * np.arange(int((HISTORY + WINDOW + 600) / STEP) + 1)
    onset = end - WINDOW + 600
    write_openmetrics(_samples(t, onset, np.random.default_rng(7)), work / "series.om")
    create_blocks(work / "series.om", work / "tsdb")
    with PrometheusServer(work, []) as prom:
        yield Scenario(prom.url, end, onset)


@pytest.fixture(scope="session")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> str:
    with PrometheusServer(tmp_path_factory.mktemp("prom-empty"), []) as prom:
        yield prom.url


@pytest.fixture(scope="session")
def hot_args(hot_device: Scenario) -> list[str]:
    """The ``npusuite ops detect|report`` options that judge the scenario's window."""
    s = hot_device
    return ["--prometheus", s.url, "--end", repr(s.end), "--history", "3h", "--window", "30m", "--step", "30s",
            "--season", "30m"]


