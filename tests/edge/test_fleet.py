"""Fleet server over real HTTP with in-process boxes: enrolment, staged campaigns, automatic halt, auth, audit.

The campaign mechanics run on twenty simulated boxes (``--pipeline sim``: fleet scale on two cores); the
trained-model campaign runs boxes with the real agent pipeline (platform engine, ONNX Runtime) on the
exported student."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from npusuite.edge.bundles import make_bundle
from npusuite.edge.fleet_client import FleetClient
from npusuite.edge.fleet_server import create_app
from npusuite.edge.fleet_store import FleetStore
from npusuite.edge.health import HealthCheck, HealthConfig
from npusuite.edge.pipeline import EngineInspectors, InspectionFactory, bundle_samples, load_samples
from npusuite.edge.release import ReleaseRepository
from npusuite.edge.rollout import RolloutPlan, evaluate, stage_sizes
from npusuite.edge.simulate import sample_frames, sim_factory, write_sim_model
from npusuite.edge.slots import SlotManager
from npusuite.edge.updates import UpdateManager, UpdateSource

ADMIN = "admin-secret-token"


def test_stage_sizes_and_policy():
    assert stage_sizes(20, (5, 25, 100)) == [1, 5, 20]
    assert stage_sizes(3, (5, 25, 100)) == [1, 1, 3]
    plan = RolloutPlan((10, 50, 100), 0.2)
    devs = [f"d{i}" for i in range(10)]
    d = evaluate(plan, "c1", devs, 0, {})
    assert d.action == "wait" and len(d.assigned) == 1
    first = d.assigned[0]
    d = evaluate(plan, "c1", devs, 0, {first: "succeeded"})
    assert d.stage == 1 and len(d.assigned) == 5  # advanced
    d = evaluate(plan, "c1", devs, 0, {first: "failed"})
    assert d.action == "halt" and d.assigned == ()
    with pytest.raises(ValueError):
        RolloutPlan((50, 25, 100))


class Fleet:
    def __init__(self, tmp, serve):
        self.tmp = tmp
        self.repo = ReleaseRepository.init(tmp / "release")
        self.store = FleetStore(tmp / "fleet.db")
        self.srv = serve(create_app(self.store, admin_token=ADMIN, release_dir=tmp / "release"))
        self.admin = httpx.Client(base_url=self.srv.url, headers={"Authorization": f"Bearer {ADMIN}"})
        self.devices: list[FleetClient] = []
        self.engines: list[EngineInspectors] = []

    def release(self, version: str, mode: str = "ok") -> str:
        model = write_sim_model(self.tmp / f"m-{version}", "line-a", version, mode=mode)
        target = f"models/line-a-{version}.tar.gz"
        self.repo.add_target(target, make_bundle(model, self.tmp / f"b-{version}.tgz", "line-a", version), version)
        return target

    def release_model(self, version: str, model_dir) -> str:
        """Sign a bundle of a real model folder (e.g. the exported ONNX student)."""
        target = f"models/line-a-{version}.tar.gz"
        self.repo.add_target(target, make_bundle(model_dir, self.tmp / f"b-{version}.tgz", "line-a", version),
                             version)
        return target

    def add_devices(self, n: int, trained: bool = False) -> None:
        """``n`` boxes; ``trained``: each runs the agent's real pipeline (platform engine + the adapter; health
        checks on each bundle's calibration images), else the simulated scorer."""
        enroll = self.admin.post("/api/enrollment-tokens", json={"uses": n}).json()["enrollment_token"]
        frames, truth = sample_frames(4)
        for i in range(n):
            box = self.tmp / f"box{i}"
            inspectors = None
            if trained:
                inspectors = EngineInspectors()
                health = HealthCheck(InspectionFactory(), bundle_samples, HealthConfig(max_p95_latency_ms=10_000))
                self.engines.append(inspectors)
            else:
                health = HealthCheck(sim_factory, frames, HealthConfig(max_p95_latency_ms=5000), expected_ng=truth)
            updates = UpdateManager(SlotManager(box), UpdateSource.from_base(f"{self.srv.url}/tuf"), health,
                                    inspectors=inspectors)
            updates.trust_root(self.repo.trusted_root_path)
            client = FleetClient(self.srv.url, f"dev-{i:02d}", box, updates, lambda: {"ok": True},
                                 enrollment_token=enroll)
            assert client.heartbeat_once() is None  # enrols, reports, nothing to install yet
            self.devices.append(client)

    def drive(self, campaign_id: str, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for dev in self.devices:
                dev.heartbeat_once()
            for dev in self.devices:
                if dev._worker is not None:
                    dev._worker.join(60)
            camp = self.admin.get(f"/api/campaigns/{campaign_id}").json()
            if camp["status"] != "running":
                return camp
        raise AssertionError(f"campaign did not finish: {camp}")


@pytest.fixture
def fleet(tmp_path, serve):
    fleet = Fleet(tmp_path, serve)
    yield fleet
    for engine in fleet.engines:
        engine.close()


def test_a_trained_onnx_student_rolls_out_through_a_staged_campaign(fleet, trained_onnx, tmp_path):
    """The exported student, signed, rolled out in stages to boxes running the real pipeline; then a corrupt
    graph is halted at stage 1 and rolled back there, and every box keeps inspecting with the good version."""
    from npusuite.platform.runtime.onnx_runtime import OnnxModule

    fleet.add_devices(3, trained=True)
    good = fleet.release_model("1.0.0", trained_onnx / "onnx")
    resp = fleet.admin.post("/api/campaigns", json={"target": good, "version": "1.0.0", "stages_pct": [30, 100],
                                                    "failure_threshold": 0.2})
    camp = fleet.drive(resp.json()["id"])
    assert camp["status"] == "completed" and camp["outcomes"]["succeeded"] == 3, camp
    frames, _ = load_samples(trained_onnx / "data" / "washer" / "test")
    for dev, engine in zip(fleet.devices, fleet.engines, strict=True):
        assert dev.updates.slots.committed().version == "1.0.0" and engine.ref == "line-a@1.0.0"
        assert dev.updates.status.health["frames"] > 0  # checked on the bundle's own calibration images
        with engine.lease() as (inspector, label):
            assert isinstance(inspector.model.net, OnnxModule) and label == "line-a@1.0.0"
            assert 0.0 <= inspector.inspect(frames[0]).score <= 1.0

    broken = tmp_path / "broken"
    shutil.copytree(trained_onnx / "onnx", broken)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    bad = fleet.release_model("1.1.0", broken)
    resp = fleet.admin.post("/api/campaigns", json={"target": bad, "version": "1.1.0", "stages_pct": [30, 100],
                                                    "failure_threshold": 0.2})
    camp = fleet.drive(resp.json()["id"])
    assert camp["status"] == "halted" and camp["outcomes"]["failed"] == 1 and camp["outcomes"]["succeeded"] == 0
    assert [d.updates.status.state for d in fleet.devices].count("rolled_back") == 1
    assert all(e.ref == "line-a@1.0.0" for e in fleet.engines)
    assert all(d.updates.slots.committed().version == "1.0.0" for d in fleet.devices)


def test_campaign_rolls_out_in_stages_then_halts_a_bad_release(fleet):
    fleet.add_devices(10)
    good = fleet.release("1.0.0")
    resp = fleet.admin.post("/api/campaigns", json={"target": good, "version": "1.0.0",
                                                    "stages_pct": [10, 50, 100], "failure_threshold": 0.2})
    assert resp.status_code == 201, resp.text
    camp = fleet.drive(resp.json()["id"])
    assert camp["status"] == "completed" and camp["outcomes"]["succeeded"] == 10
    assert all(d.updates.slots.committed().version == "1.0.0" for d in fleet.devices)

    bad = fleet.release("1.1.0", mode="nan")  # loads, but scores NaN: every health check fails
    resp = fleet.admin.post("/api/campaigns", json={"target": bad, "version": "1.1.0",
                                                    "stages_pct": [10, 50, 100], "failure_threshold": 0.2})
    camp = fleet.drive(resp.json()["id"])
    assert camp["status"] == "halted", camp
    assert camp["outcomes"]["failed"] == 1 and camp["outcomes"]["succeeded"] == 0  # only stage 1 tried it
    assert "failed" in camp["reason"]
    for dev in fleet.devices:  # everyone still runs the good version, in a committed slot
        assert dev.updates.slots.committed().version == "1.0.0"
        assert dev.updates.slots.state.trial is False
    rolled = [d for d in fleet.devices if d.updates.status.state == "rolled_back"]
    assert len(rolled) == 1
    # a halted campaign hands out nothing more
    assert all(d.heartbeat_once() is None for d in fleet.devices)
    devices = fleet.admin.get("/api/devices").json()
    assert {d["version"] for d in devices} == {"1.0.0"}
    audit = fleet.admin.get("/api/audit").json()
    actions = [(a["actor"], a["action"]) for a in audit]
    assert ("admin", "start_campaign") in actions and ("fleet", "halted_campaign") in actions


def test_pause_resume_and_operator_audit(fleet, tmp_path):
    fleet.add_devices(3)
    token = fleet.store.add_operator("alice")
    alice = httpx.Client(base_url=fleet.srv.url, headers={"Authorization": f"Bearer {token}"})
    target = fleet.release("1.0.0")
    cid = alice.post("/api/campaigns", json={"target": target, "version": "1.0.0"}).json()["id"]
    assert alice.post(f"/api/campaigns/{cid}/pause").json()["status"] == "paused"
    assert all(d.heartbeat_once() is None for d in fleet.devices)  # paused: nobody is told to update
    assert alice.post(f"/api/campaigns/{cid}/pause").status_code == 400
    assert alice.post(f"/api/campaigns/{cid}/resume").json()["status"] == "running"
    assert fleet.drive(cid)["status"] == "completed"
    audit = alice.get("/api/audit").json()
    mine = [a["action"] for a in audit if a["actor"] == "alice"]
    assert {"start_campaign", "pause_campaign", "resume_campaign"} <= set(mine)


def test_management_needs_auth_and_bad_input_is_a_json_error(fleet):
    anon = httpx.Client(base_url=fleet.srv.url)
    for method, path in [("GET", "/api/devices"), ("GET", "/api/campaigns"), ("POST", "/api/campaigns"),
                         ("GET", "/api/audit"), ("POST", "/api/enrollment-tokens")]:
        resp = anon.request(method, path, json={})
        assert resp.status_code == 401 and "error" in resp.json(), (method, path)
    fleet.add_devices(1)
    dev_token = fleet.devices[0].token()
    as_device = httpx.Client(base_url=fleet.srv.url, headers={"Authorization": f"Bearer {dev_token}"})
    assert as_device.get("/api/devices").status_code == 401  # a device token is not an operator token
    assert anon.post("/api/heartbeat", json={}).status_code == 401
    assert anon.post("/api/enroll", json={"enrollment_token": "nope", "device_id": "x"}).status_code == 401
    resp = fleet.admin.post("/api/campaigns", json={"target": "t", "version": "1", "stages_pct": [50, 10]})
    assert resp.status_code == 422 and "error" in resp.json()
    assert fleet.admin.get("/api/campaigns/nope").status_code == 404
    assert fleet.admin.post("/api/campaigns", json={"version": "1"}).status_code == 422


def test_silent_devices_time_out_as_failures():
    plan = RolloutPlan((50, 100), 0.5, device_timeout_s=60)
    devs = ["a", "b", "c", "d"]
    first = evaluate(plan, "c9", devs, 0, {}).assigned
    ok_one = {first[0]: "succeeded"}
    d = evaluate(plan, "c9", devs, 0, ok_one, stage_age_s=30)
    assert d.action == "wait" and d.timed_out == ()
    d = evaluate(plan, "c9", devs, 0, ok_one, stage_age_s=61)  # the other stage-1 box never answered
    assert d.timed_out == (first[1],) and d.stage == 1 and d.action == "wait"  # 1/2 failed = 50%, not above
    d = evaluate(plan, "c9", devs, 0, {}, stage_age_s=61)
    assert d.action == "halt" and set(d.timed_out) == set(first) and "timed out" in d.reason


def test_store_records_timeouts_and_halts(tmp_path):
    store = FleetStore(tmp_path / "f.db")
    tok = store.create_enrollment_token("admin", 3)
    for i in range(3):
        store.enroll(tok, f"d{i}")
    camp = store.create_campaign("admin", "t", "1.0", RolloutPlan((100,), 0.2, device_timeout_s=0.5))
    time.sleep(0.6)
    result = store.campaign(camp.id)
    assert result["status"] == "halted" and result["outcomes"]["failed"] == 3
    assert sum(a["action"] == "device_timed_out" for a in store.audit()) == 3


def test_unreachable_repository_is_retried_not_failed(fleet):
    fleet.add_devices(1)
    dev = fleet.devices[0]
    dev.updates.source = UpdateSource.from_base("http://127.0.0.1:9/tuf")  # nothing listens there
    target = fleet.release("1.0.0")
    cid = fleet.admin.post("/api/campaigns", json={"target": target, "version": "1.0.0",
                                                   "stages_pct": [100]}).json()["id"]
    assert dev.heartbeat_once()["campaign_id"] == cid
    dev._worker.join(60)
    assert cid not in dev.outcomes and cid in dev._retry_at  # not judged: try again later
    dev.heartbeat_once()
    assert dev._current is None  # inside the backoff: no new attempt yet
    camp = fleet.admin.get(f"/api/campaigns/{cid}").json()
    assert camp["status"] == "running" and camp["outcomes"]["failed"] == 0
    dev.updates.source = UpdateSource.from_base(f"{fleet.srv.url}/tuf")  # the link is back
    dev._retry_at[cid] = (0.0, 1)
    assert fleet.drive(cid)["status"] == "completed"
