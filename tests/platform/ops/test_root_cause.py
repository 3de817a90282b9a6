from __future__ import annotations

import numpy as np

from npusuite.platform.ops.anomalies import SeriesVerdict
from npusuite.platform.ops.root_cause import rank
from npusuite.platform.ops.topology import SUITE


def _v(component: str, series: str, onset: float | None, score: float = 3.0) -> SeriesVerdict:
    key = next(s for s in SUITE[component].series if s.name == series)
    z = np.zeros(3)
    return SeriesVerdict(component, key, z, z, z.astype(bool), onset, score, "forecast")


def test_a_dependency_is_ranked_before_its_dependents_even_when_they_flag_first():
    # LLM latency creep: the scorer's p99 crosses its band before the LLM's own series do
    r = rank(SUITE, [_v("fraud-scorer", "latency_p99", 100.0), _v("llm-tier", "ttft_p99", 160.0),
                     _v("review", "backlog", 400.0)])
    assert [x.component for x in r] == ["llm-tier", "fraud-scorer", "review"]
    assert r[0].root_candidate and r[1].explained_by == ("llm-tier",)
    assert r[0].evidence[0].series == "ttft_p99" and r[0].evidence[0].onset == 160.0


def test_unrelated_roots_are_ordered_by_strength_and_clean_series_are_ignored():
    # a stray, barely-outside alarm on the edge box before a broker outage far outside its band
    r = rank(SUITE, [_v("edge-box", "outbox_pending", 100.0, 1.2), _v("kafka", "aborts", 200.0, 40.0),
                     _v("fraud-scorer", "lag", 210.0), _v("device", "temperature", None)])
    assert [x.component for x in r] == ["kafka", "edge-box", "fraud-scorer"]
    assert [x.rank for x in r] == [1, 2, 3]
    assert rank(SUITE, [_v("device", "temperature", None)]) == []


def test_evidence_lists_every_flagged_series_earliest_first():
    r = rank(SUITE, [_v("fraud-scorer", "lag", 50.0, 2.0), _v("fraud-scorer", "throughput", 20.0, 9.0)])
    assert [e.series for e in r[0].evidence] == ["throughput", "lag"]
    assert r[0].onset == 20.0 and r[0].score == 9.0


def test_a_dependency_anomalous_long_after_explains_nothing():
    r = rank(SUITE, [_v("fraud-scorer", "lag", 100.0, 5.0), _v("device", "temperature", 5000.0, 2.0)],
             explain_window_s=900)
    assert [x.component for x in r] == ["fraud-scorer", "device"] and all(x.root_candidate for x in r)
    late = rank(SUITE, [_v("llm-tier", "ttft_p99", 100.0, 5.0), _v("device", "temperature", 900.0, 2.0)])
    assert late[0].component == "device" and late[1].explained_by == ("device",)


def test_a_blip_on_a_distant_dependency_does_not_explain_across_a_quiet_component():
    # broker stop seen on the scorer; a stray device blip; the LLM tier between them is quiet
    r = rank(SUITE, [_v("fraud-scorer", "throughput", 100.0, 50.0), _v("device", "temperature", 96.0, 1.1)])
    assert [x.component for x in r] == ["fraud-scorer", "device"] and all(x.root_candidate for x in r)
    # with the LLM tier anomalous too, the chain holds
    r = rank(SUITE, [_v("fraud-scorer", "latency_p99", 100.0, 5.0), _v("llm-tier", "ttft_p99", 90.0, 3.0),
                     _v("device", "temperature", 60.0, 2.0)])
    assert [x.component for x in r] == ["device", "llm-tier", "fraud-scorer"]
    assert r[2].explained_by == ("device", "llm-tier")
