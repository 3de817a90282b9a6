from __future__ import annotations

import re

import pytest

from npusuite.platform.observability import names as N
from npusuite.platform.ops.topology import SUITE, Component, Direction, KeySeries, Topology


def test_the_suite_graph_has_the_issue_paths_and_no_cycle():
    order = SUITE.order()
    assert order.index("kafka") < order.index("fraud-scorer") and order.index("llm-tier") < order.index("review")
    assert order.index("camera") < order.index("inspection-line") < order.index("plc")
    assert {"fleet", "inspection-line"} <= set(SUITE["edge-box"].depends_on)
    assert SUITE.dependencies("review") >= {"fraud-scorer", "llm-tier", "kafka", "device", "edge-box", "camera"}
    assert SUITE.depth("kafka") == 0 and SUITE.depth("review") > SUITE.depth("fraud-scorer")


def test_every_key_series_uses_an_exported_name_or_is_marked_pending():
    exported = {v for k, v in vars(N).items() if k.isupper() and isinstance(v, str)}
    for comp, key in SUITE.all_series():
        metrics = set(re.findall(r"\b(npusuite_[a-z0-9_]+)", key.promql))
        metrics = {re.sub(r"_(bucket|count|sum)$", "", m) for m in metrics}
        unknown = metrics - exported
        assert not unknown or key.pending, f"{comp.name}/{key.name}: {unknown} not in observability/names.py"


def test_bad_graphs_are_refused():
    k = (KeySeries("s", "x", Direction.UP, 1.0, 0.0),)
    with pytest.raises(ValueError, match="unknown component"):
        Topology((Component("a", ("b",), k),))
    with pytest.raises(ValueError, match="cycle"):
        Topology((Component("a", ("b",), k), Component("b", ("a",), k)))
    with pytest.raises(ValueError, match="duplicate"):
        Topology((Component("a", (), k), Component("a", (), k)))
