"""BatchHistogram scrapes exactly as prometheus_client's own Histogram fed the same values."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from npusuite.platform.batch_histogram import BatchHistogram

BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 1.0)


def _series(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if not line.startswith("#") and "_created" not in line]


def test_scrape_matches_the_client_histogram_including_values_on_a_bound():
    values = [*np.random.default_rng(3).exponential(0.03, 2000).tolist(), 0.005, 0.01, 1.0, 7.5, 0.0]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("lat_seconds", "Latency.", BUCKETS, ours)
    reference = Histogram("lat_seconds", "Latency.", buckets=BUCKETS, registry=theirs)
    for v in values:
        reference.observe(v)
    batch.observe_many(values[:1000])
    batch.observe_many([])
    batch.observe_many(np.array(values[1000:-1]))
    batch.observe(values[-1])
    mine, ref = _series(ours), _series(theirs)
    assert [line.rsplit(" ", 1)[0] for line in mine] == [line.rsplit(" ", 1)[0] for line in ref]
    got = [float(line.rsplit(" ", 1)[1]) for line in mine]
    want = [float(line.rsplit(" ", 1)[1]) for line in ref]
    assert got == pytest.approx(want, rel=1e-12)  # the _sum adds in another order
    assert 'lat_seconds_bucket{le="+Inf"} 2005.0' in mine
    assert any(line.startswith("lat_seconds_created") for line in generate_latest(ours).decode().splitlines())


def test_buckets_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        BatchHistogram("x", "x", (0.1, 0.05), CollectorRegistry())
