"""The edge agent on the real inspection engine (docs/inspection-api.md): signed update of a trained model, health check
on real frames, and the agent CLI inspecting a folder with it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from npusuite.edge.bundles import make_bundle
from npusuite.edge.health import HealthCheck, HealthConfig
from npusuite.edge.pipeline import inspection_factory, load_samples
from npusuite.edge.release import ReleaseRepository
from npusuite.edge.slots import SlotManager
from npusuite.edge.updates import UpdateManager, UpdateSource


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from npusuite.inspection.generate import GenerateConfig, generate
    from npusuite.inspection.train import TrainConfig, train

    root = tmp_path_factory.mktemp("insp")
    generate(root / "data", GenerateConfig(size_px=32, train_good=20, test_good=4, test_per_defect=1),
             products=("washer",))
    # a few steps only: this checks the wiring, not the model's accuracy
    train(root / "data" / "washer", root / "model",
          TrainConfig(teacher_steps=2, student_steps=2, batch_size=4, progress=False))
    samples = root / "samples"
    shutil.copytree(root / "data" / "washer" / "test" / "good", samples / "good")
    (samples / "ng").mkdir()
    for p in (root / "data" / "washer" / "test").glob("*/*.png"):
        if p.parent.name != "good":
            shutil.copy(p, samples / "ng" / f"{p.parent.name}-{p.name}")
    return root


def test_signed_update_of_a_trained_inspection_model(trained, tmp_path, serve_static):
    repo = ReleaseRepository.init(tmp_path / "release")
    srv = serve_static(repo.dir / "repository")
    bundle = make_bundle(trained / "model", tmp_path / "washer.tgz", "washer", "1.0.0")
    repo.add_target("models/washer-1.0.0.tgz", bundle, "1.0.0")
    frames, expected = load_samples(trained / "samples")
    assert expected is not None and any(expected) and not all(expected)
    served = []
    health = HealthCheck(inspection_factory, frames, HealthConfig(max_p95_latency_ms=10_000))  # untrained: no agreement
    updates = UpdateManager(SlotManager(tmp_path / "box"), UpdateSource.from_base(srv.url), health,
                            on_commit=lambda insp, _d: served.append(insp))
    updates.trust_root(repo.trusted_root_path)
    status = updates.apply("models/washer-1.0.0.tgz")
    assert status.state == "committed", status.detail
    assert status.health["frames"] == len(frames) and status.health["p95_latency_ms"] > 0
    result = served[0].inspect(frames[0])
    assert 0.0 <= result.score <= 1.0 and result.heatmap.shape == frames[0].image.shape[:2]


def test_agent_cli_runs_the_inspection_engine(trained, tmp_path):
    box = tmp_path / "box"
    out = subprocess.run([sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", str(box),
                          "--device-id", "b1", "--source", str(trained / "data" / "washer" / "test"),
                          "--model", str(trained / "model")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    n_images = len(list((trained / "data" / "washer" / "test").rglob("*.png")))
    assert summary["frames"] == summary["stored"] == n_images
    con = sqlite3.connect(box / "outbox.db")
    models = {json.loads(r[0])["model"] for r in con.execute("SELECT payload FROM results")}
    assert models == {"washer-student@local"}


def test_updates_swap_through_the_platform_engine_and_a_refused_candidate_changes_nothing(trained, tmp_path,
                                                                                          serve_static):
    """The agent's swap mechanism (issue 13 part 1): each update's model is built and warmed by the platform engine's
    InspectionAdapter beside the serving one, the health check runs on THAT candidate, and only then does the engine
    switch; a candidate that fails the check, or cannot even be built, leaves the serving version and rolls back."""
    from npusuite.edge.pipeline import EngineInspectors

    repo = ReleaseRepository.init(tmp_path / "release")
    srv = serve_static(repo.dir / "repository")
    broken = tmp_path / "broken"
    shutil.copytree(trained / "model", broken)
    card = json.loads((broken / "inspection.json").read_text())
    (broken / "inspection.json").write_text(json.dumps({**card, "size_px": [30, 30]}))  # not a multiple of the net's
    for version, folder in (("1.0.0", trained / "model"), ("1.1.0", trained / "model"), ("1.2.0", broken)):
        repo.add_target(f"models/washer-{version}.tgz", make_bundle(folder, tmp_path / f"w{version}.tgz", "washer",
                                                                    version), version)
    frames, _ = load_samples(trained / "samples")
    inspectors = EngineInspectors()
    updates = UpdateManager(SlotManager(tmp_path / "box"), UpdateSource.from_base(srv.url),
                            HealthCheck(inspection_factory, frames, HealthConfig(max_p95_latency_ms=10_000)),
                            inspectors=inspectors)
    updates.trust_root(repo.trusted_root_path)
    try:
        with inspectors.lease() as (inspector, label):
            assert inspector is None and label is None and not inspectors.ready.is_set()
        status = updates.apply("models/washer-1.0.0.tgz")
        assert status.state == "committed", status.detail
        assert status.health["model"] == "washer@1.0.0" and status.health["frames"] == len(frames)
        assert inspectors.ref == "washer@1.0.0" and inspectors.ready.is_set()
        with inspectors.lease() as (inspector, label):
            assert label == "washer@1.0.0" and inspector.inspect(frames[0]).model == "washer@1.0.0"

        # A candidate that builds and warms but fails the health check (here: an impossible latency bound).
        updates.health = HealthCheck(inspection_factory, frames, HealthConfig(max_p95_latency_ms=1e-6))
        status = updates.apply("models/washer-1.1.0.tgz")
        assert status.state == "rolled_back" and "p95 latency" in status.detail, status.detail
        assert status.health["model"] == "washer@1.1.0"  # the check ran on the candidate, not on the serving one
        assert inspectors.ref == "washer@1.0.0" and updates.slots.committed().version == "1.0.0"

        # A candidate the adapter refuses to build: rolled back at the load step.
        updates.health = HealthCheck(inspection_factory, frames, HealthConfig(max_p95_latency_ms=10_000))
        status = updates.apply("models/washer-1.2.0.tgz")
        assert status.state == "rolled_back" and "load failed" in status.detail and "size_px" in status.detail
        assert inspectors.ref == "washer@1.0.0" and updates.slots.committed().version == "1.0.0"
        with inspectors.lease() as (inspector, label):
            assert label == "washer@1.0.0" and inspector.inspect(frames[1]).model == "washer@1.0.0"
    finally:
        inspectors.close()
