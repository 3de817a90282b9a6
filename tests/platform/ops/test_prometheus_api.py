"""The ops client against a real Prometheus server (backfilled series, see conftest)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from npusuite.platform.observability import names as N
from npusuite.platform.ops.prometheus_api import PrometheusClient, PrometheusError


def test_range_and_instant_queries_return_the_backfilled_series(hot_device):
    with PrometheusClient(hot_device.url) as c:
        (s,) = c.query_range(f"max({N.DEVICE_TEMPERATURE_CELSIUS})", hot_device.end - 3600, hot_device.end, 30)
        y = s.on_grid(hot_device.end - 3600, hot_device.end, 30)
        assert y.size == 121 and np.isfinite(y).all()
        assert y[-1] > y[0] + 15  # the heating in the window
        (inst,) = c.query(f"max({N.DEVICE_TEMPERATURE_CELSIUS})", at=hot_device.end)
        assert inst.v[0] == pytest.approx(y[-1])
        assert c.query_range("no_such_metric_anywhere", hot_device.end - 600, hot_device.end, 30) == []


def test_a_bad_query_is_a_one_line_error_naming_prometheus_reason(hot_device):
    with PrometheusClient(hot_device.url) as c, pytest.raises(PrometheusError, match="refused the query.*bad_data"):
        c.query_range("sum(rate(x[5m]", hot_device.end - 600, hot_device.end, 30)
    with PrometheusClient(hot_device.url) as c, pytest.raises(PrometheusError, match="bad range"):
        c.query_range("up", hot_device.end, hot_device.end - 600, 30)


def test_unreachable_and_non_prometheus_servers_are_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PrometheusClient(f"http://127.0.0.1:{port}", timeout_s=2) as c, \
            pytest.raises(PrometheusError, match="cannot reach Prometheus"):
        c.query("up")
    with pytest.raises(PrometheusError, match="must start with http"):
        PrometheusClient("localhost:9090")
