"""/healthz, /readyz and /metrics of the edge agent's status server and of the fleet server."""

import time
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from npusuite.edge.fleet_server import create_app
from npusuite.edge.fleet_store import FleetStore
from npusuite.edge.status_server import create_status_app


def test_agent_readiness_follows_the_model_and_metrics_keep_their_token():
    state = {"model": False}
    app = create_status_app(lambda: {"slot": "a"}, CollectorRegistry(), token="s3cret", ready=lambda: state)
    client = TestClient(app)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503
    state["model"] = True
    assert client.get("/readyz").json() == {"ready": True, "checks": {"model": True}}
    assert client.get("/metrics").status_code == 401  # readiness is public, metrics and status are not
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_fleet_server_ready_while_its_database_answers(tmp_path: Path):
    store = FleetStore(tmp_path / "fleet.db")
    client = TestClient(create_app(store, admin_token="a" * 32))
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"ready": True, "checks": {"database": True}}
    text = client.get("/metrics").text
    assert 'npusuite_host_disk_free_bytes{folder="database"}' in text and "npusuite_process_cpu_seconds_total" in text
    store._db.close()  # the database goes away
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False and "fleet.db" not in r.text


def test_fleet_metrics_say_when_each_box_last_checked_in(tmp_path: Path):
    store = FleetStore(tmp_path / "fleet.db")
    token = store.create_enrollment_token("ops", uses=2)
    store.enroll(token, "box-1")
    store.enroll(token, "box-2")  # enrolled, never checked in: no series
    before = time.time()
    store.heartbeat("box-1", "1.0.0", "washer", {"ok": True}, None)
    client = TestClient(create_app(store, admin_token="a" * 32))
    samples = {s.labels["device"]: s.value for family in text_string_to_metric_families(client.get("/metrics").text)
               if family.name == "npusuite_fleet_device_last_seen_timestamp_seconds" for s in family.samples}
    assert set(samples) == {"box-1"} and before <= samples["box-1"] <= time.time()
