from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from npusuite.platform.ops.capacity import advise
from npusuite.platform.ops.scaling import kubectl_command, values_override, write_values

CHART_VALUES = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "npusuite" / "values.yaml"


def test_crossing_time_and_replicas_for_a_growing_load():
    t = 1000.0 + 60 * np.arange(60)
    load = np.linspace(100, 400, 60)  # tx/s
    a = advise(t, load, current_replicas=2, replica_capacity=200, limit=0.8)
    # 0.8 * 2 * 200 = 320 tx/s is first exceeded at index 44 (100 + 300 * 44/59 = 323.7)
    assert a.threshold == 320 and a.crossing_at == t[44]
    assert a.needed_replicas == 3 and a.scale_up and not a.capped  # 400 / (0.8 * 200) = 2.5 -> 3
    assert "needs 3 replica(s)" in a.message()


def test_no_crossing_keeps_the_replicas_and_the_cap_binds():
    t = np.arange(10.0)
    a = advise(t, np.full(10, 100.0), current_replicas=1, replica_capacity=200)
    assert a.crossing_at is None and a.needed_replicas == 1 and not a.scale_up
    b = advise(t, np.full(10, 2000.0), current_replicas=1, replica_capacity=200, max_replicas=4)
    assert b.capped and b.needed_replicas == 4 and "raise fraud.partitions" in b.message()


@pytest.mark.parametrize("kwargs", [dict(current_replicas=0, replica_capacity=1.0),
                                    dict(current_replicas=1, replica_capacity=0.0),
                                    dict(current_replicas=1, replica_capacity=1.0, limit=1.5)])
def test_bad_inputs_are_refused(kwargs):
    with pytest.raises(ValueError):
        advise(np.arange(3.0), np.ones(3), **kwargs)
    with pytest.raises(ValueError, match="no forecast load"):
        advise(np.arange(3.0), np.full(3, np.nan), current_replicas=1, replica_capacity=1.0)


def test_the_override_uses_keys_the_chart_reads(tmp_path: Path):
    chart = yaml.safe_load(CHART_VALUES.read_text())
    a = advise(np.arange(3.0), np.full(3, 700.0), current_replicas=2, replica_capacity=200, max_replicas=4)
    override = values_override(a, current_max_replicas=4)
    assert set(override["fraud"]) <= set(chart["fraud"])
    assert set(override["fraud"]["autoscaling"]) <= set(chart["fraud"]["autoscaling"])
    assert override == {"fraud": {"replicas": 4, "autoscaling": {"minReplicas": 4, "maxReplicas": 4}}}
    path = write_values(a, tmp_path / "scale.yaml", current_max_replicas=4)
    assert yaml.safe_load(path.read_text()) == override
    assert kubectl_command(a, release="prod", namespace="bank") == \
        "kubectl -n bank scale statefulset/prod-fraud --replicas=4"
