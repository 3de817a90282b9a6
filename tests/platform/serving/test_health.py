"""The platform server's /healthz and /readyz (unauthenticated, like /metrics)."""

from pathlib import Path

from fastapi.testclient import TestClient

from npusuite.platform.engine import ModelManager
from npusuite.platform.repository import ModelRepository
from npusuite.platform.serving.app import create_app
from npusuite.platform.serving.metrics import PlatformMetrics


def test_alive_but_not_ready_without_a_model(tmp_path: Path):
    (tmp_path / "models").mkdir()
    manager = ModelManager(ModelRepository(tmp_path / "models"))
    metrics = PlatformMetrics()
    metrics.add_infrastructure({"repository": tmp_path / "models"}, "cpu")
    client = TestClient(create_app(manager, metrics, admin_token="t"))
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"ready": False, "checks": {"models": False}}
    text = client.get("/metrics").text
    assert 'npusuite_host_disk_free_bytes{folder="repository"}' in text
    assert "npusuite_process_open_fds" in text and "npusuite_device_" not in text
    assert client.post("/readyz").status_code == 405
    manager.close()
