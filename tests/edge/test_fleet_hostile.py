"""The fleet server against hostile bodies over real HTTP: each is a 4xx with a JSON reason, and the server
keeps answering everyone else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from npusuite.edge.fleet_server import MAX_BODY_BYTES, create_app
from npusuite.edge.fleet_store import FleetStore
from npusuite.edge.release import ReleaseRepository, check_target_path
from npusuite.platform.errors import UserError

ADMIN = "admin-secret-token"
JSON = {"content-type": "application/json"}


@pytest.fixture
def fleet(tmp_path: Path, serve):
    srv = serve(create_app(FleetStore(tmp_path / "fleet.db"), admin_token=ADMIN))
    admin = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    token = admin.post("/api/enrollment-tokens", json={"uses": 1}).json()["enrollment_token"]
    device_token = admin.post("/api/enroll", json={"enrollment_token": token, "device_id": "box-1"}).json()
    device = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {device_token['device_token']}"},
                          timeout=60)
    yield admin, device
    admin.close()
    device.close()


def _still_serving(admin: httpx.Client) -> None:
    assert admin.get("/healthz").status_code == 200
    devices = admin.get("/api/devices")
    assert devices.status_code == 200, devices.text
    assert admin.get("/api/campaigns").status_code == 200


def test_a_non_finite_health_value_is_refused_and_cannot_break_the_device_list(fleet):
    """Old code stored ``NaN`` from a heartbeat; every later ``GET /api/devices`` then failed with 500."""
    admin, device = fleet
    resp = device.post("/api/heartbeat", content=b'{"health": {"latency_ms": NaN}}', headers=JSON)
    assert resp.status_code == 400 and "NaN" in resp.json()["error"]
    _still_serving(admin)


@pytest.mark.parametrize("field, value", [("device_timeout_s", b"Infinity"), ("failure_threshold", b"NaN"),
                                          ("device_timeout_s", b"-1"), ("device_timeout_s", b"1e300")])
def test_a_campaign_with_a_non_finite_or_absurd_number_is_refused(fleet, field: str, value: bytes):
    admin, _ = fleet
    body = b'{"target": "models/a.tgz", "version": "1.0.0", "%s": %s}' % (field.encode(), value)
    resp = admin.post("/api/campaigns", content=body, headers=JSON)
    assert 400 <= resp.status_code < 500 and resp.json()["error"], resp.text
    assert admin.get("/api/campaigns").json() == []  # nothing was started


@pytest.mark.parametrize("target", ["../../etc/passwd", "/abs/x.tgz", "a/../../b", "a\\b", "", "x" * 201])
def test_a_campaign_target_that_escapes_the_repository_is_refused(fleet, target: str):
    admin, _ = fleet
    resp = admin.post("/api/campaigns", json={"target": target, "version": "1.0.0"})
    assert resp.status_code == 422 and "target" in resp.json()["error"], resp.text
    assert admin.get("/api/campaigns").json() == []


def test_a_campaign_version_must_be_pep440_and_short(fleet):
    admin, _ = fleet
    for version in ("1" * 1000, "not a version", "../1"):
        resp = admin.post("/api/campaigns", json={"target": "models/a.tgz", "version": version})
        assert resp.status_code == 422 and "version" in resp.json()["error"], resp.text


def test_deep_huge_and_non_object_bodies_are_4xx_with_a_reason(fleet):
    admin, device = fleet
    deep = b'{"health":' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"  # under the size cap, over the depth cap
    assert len(deep) < MAX_BODY_BYTES
    resp = device.post("/api/heartbeat", content=deep, headers=JSON)
    assert resp.status_code == 400 and "nested" in resp.json()["error"]
    resp = device.post("/api/heartbeat", json={"health": {"log": "x" * (MAX_BODY_BYTES + 1)}})
    assert resp.status_code == 413 and resp.json()["error"]
    resp = device.post("/api/heartbeat", content=iter([b"[" * 4096] * 64), headers=JSON)  # chunked, no length
    assert resp.status_code == 413
    for raw in (b"[1, 2]", b'{"version": "\xff"}', b"{"):
        resp = device.post("/api/heartbeat", content=raw, headers=JSON)
        assert resp.status_code == 400 and resp.json()["error"], (raw, resp.text)
    resp = device.post("/api/heartbeat", json={"version": "v" * 65})
    assert resp.status_code == 422 and "version" in resp.json()["error"]
    _still_serving(admin)


def test_a_body_is_not_read_before_the_caller_is_authenticated(fleet):
    admin, _ = fleet
    resp = httpx.post(f"{admin.base_url}/api/campaigns", content=b"{" * 100_000, headers=JSON)
    assert resp.status_code == 401


def test_audit_limit_out_of_range_is_422_not_500(fleet):
    admin, _ = fleet
    for limit in ("-1", "0", "99999999999999999999"):
        resp = admin.get(f"/api/audit?limit={limit}")
        assert resp.status_code == 422 and resp.json()["error"], resp.text
    assert admin.get("/api/audit?limit=5").status_code == 200


@pytest.mark.parametrize("target", ["../x.tgz", "models/../../x.tgz", "./x.tgz", "a b.tgz", "models//x.tgz"])
def test_release_refuses_a_target_path_outside_its_folder(tmp_path: Path, target: str):
    repo = ReleaseRepository.init(tmp_path / "rel")
    bundle = tmp_path / "b.tgz"
    bundle.write_bytes(b"bundle")
    with pytest.raises(UserError, match="bad target path"):
        repo.add_target(target, bundle, "1.0.0")
    with pytest.raises(UserError):
        check_target_path(target)
    assert not list((tmp_path / "rel" / "repository" / "targets").rglob("*.tgz"))
