import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from npusuite.platform.observability.http import HealthServer, readiness_answer


@pytest.fixture
def registry():
    r = CollectorRegistry()
    Counter("npusuite_test_things", "things", registry=r).inc(3)
    return r


def test_metrics_healthz_and_readyz(registry):
    state = {"broker": True, "model": False}
    with HealthServer(registry, lambda: state) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        m = httpx.get(server.url + "/metrics")
        assert m.status_code == 200 and "npusuite_test_things_total 3.0" in m.text
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        r = httpx.get(server.url + "/readyz")
        assert r.status_code == 503 and r.json() == {"ready": False, "checks": {"broker": True, "model": False}}
        state["model"] = True
        r = httpx.get(server.url + "/readyz")
        assert r.status_code == 200 and r.json()["ready"] is True


def test_hostile_requests_get_json_errors(registry):
    with HealthServer(registry) as server:
        r = httpx.get(server.url + "/../etc/passwd")
        assert r.status_code == 404 and "error" in r.json()
        r = httpx.post(server.url + "/metrics", content=b"x" * 10_000)
        assert r.status_code == 405 and "POST" in r.json()["error"]
        r = httpx.get(server.url + "/readyz?" + "a" * 5000)
        assert r.status_code == 200  # no checks: ready; the query is ignored


def test_a_readiness_check_that_raises_is_not_ready():
    def broken():
        raise ConnectionError("secret-host:9092 refused")

    status, body = readiness_answer(broken)
    assert status == 503 and body["ready"] is False
    assert "secret-host" not in str(body)  # the error's type, not its text (it may name hosts)
