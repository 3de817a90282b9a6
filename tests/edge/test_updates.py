"""Signed A/B updates end to end: a real TUF repository served over loopback HTTP, ngclient on the box."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import TargetFile

from npusuite.edge.bundles import make_bundle
from npusuite.edge.health import HealthCheck, HealthConfig
from npusuite.edge.release import ReleaseRepository
from npusuite.edge.simulate import sample_frames, sim_factory, write_sim_model
from npusuite.edge.slots import SlotManager
from npusuite.edge.updates import UpdateManager, UpdateSource


def release(repo: ReleaseRepository, tmp: Path, version: str, mode: str = "ok", target: str | None = None) -> str:
    target = target or f"models/line-a-{version}.tar.gz"
    model = write_sim_model(tmp / f"model-{version}-{mode}", "line-a", version, mode=mode)
    bundle = make_bundle(model, tmp / f"bundle-{version}-{mode}.tar.gz", "line-a", version)
    repo.add_target(target, bundle, version)
    return target


class Box:
    def __init__(self, box_dir: Path, url: str, trusted_root: Path) -> None:
        self.slots = SlotManager(box_dir)
        frames, truth = sample_frames(8)
        self.serving: list[str] = []
        health = HealthCheck(sim_factory, frames, HealthConfig(max_p95_latency_ms=5000), expected_ng=truth)
        self.updates = UpdateManager(self.slots, UpdateSource.from_base(url), health,
                                     on_commit=lambda insp, _d: self.serving.append(insp.model))
        self.updates.trust_root(trusted_root)

    def running(self) -> tuple[str | None, str | None]:
        info = self.slots.committed()
        return self.slots.state.active, info.version if info else None


@pytest.fixture
def setup(tmp_path, serve_static):
    repo = ReleaseRepository.init(tmp_path / "release")
    srv = serve_static(repo.dir / "repository")
    box = Box(tmp_path / "box", srv.url, repo.trusted_root_path)
    t1 = release(repo, tmp_path, "1.0.0")
    status = box.updates.apply(t1)
    assert status.state == "committed", status.detail
    assert box.running() == ("a", "1.0.0")
    return repo, box, tmp_path


def test_first_install_commits_and_second_goes_to_the_other_slot(setup):
    repo, box, tmp = setup
    assert box.serving == ["line-a@1.0.0"]
    t2 = release(repo, tmp, "1.1.0")
    status = box.updates.apply(t2)
    assert status.state == "committed", status.detail
    assert box.running() == ("b", "1.1.0")
    assert box.serving == ["line-a@1.0.0", "line-a@1.1.0"]
    assert status.health["ok"] and status.health["agreement"] == 1.0
    assert json.loads((box.slots.dir / "state.json").read_text())["committed"] == "b"


def test_download_resumes_from_a_partial_file(setup):
    repo, box, tmp = setup
    t2 = release(repo, tmp, "1.1.0")
    info = repo.targets()[t2]
    served = next((repo.dir / "repository" / "targets" / "models").glob(f"{info.hashes['sha256']}.*"))
    part = box.slots.download_dir("b") / f"{info.hashes['sha256']}.part"
    half = info.length // 2
    part.write_bytes(served.read_bytes()[:half])
    status = box.updates.apply(t2)
    assert status.state == "committed", status.detail
    assert status.resumed_from_bytes == half
    assert status.downloaded_bytes == info.length - half


def assert_refused(box: Box, status, kind: str) -> None:
    assert status.state == "refused", status
    assert status.detail.startswith(kind + ":"), status.detail
    assert box.running() == ("a", "1.0.0")  # still running the committed slot
    assert box.serving == ["line-a@1.0.0"]
    assert box.slots.state.trial is False


def test_refuses_tampered_bytes(setup):
    repo, box, tmp = setup
    t2 = release(repo, tmp, "1.1.0")
    served = next((repo.dir / "repository" / "targets" / "models").glob(
        f"{repo.targets()[t2].hashes['sha256']}.*"))
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length, one byte changed
    served.write_bytes(bytes(data))
    status = box.updates.apply(t2)
    assert_refused(box, status, "tampered")
    assert not list(box.slots.download_dir("b").glob("*.part"))  # bad bytes are not kept for resume


def test_refuses_expired_metadata(setup):
    repo, box, tmp = setup
    t2 = release(repo, tmp, "1.1.0")
    repo.resign_timestamp(expires_in=timedelta(seconds=-60))
    assert_refused(box, box.updates.apply(t2), "expired")


def test_refuses_an_older_bundle_version(setup):
    repo, box, tmp = setup
    t_old = release(repo, tmp, "0.9.0", target="models/line-a-old.tar.gz")  # validly signed, but older
    assert_refused(box, box.updates.apply(t_old), "rollback")


def test_refuses_replayed_older_metadata(setup):
    repo, box, tmp = setup
    old_timestamp = (repo.dir / "repository" / "metadata" / "timestamp.json").read_bytes()
    t2 = release(repo, tmp, "1.1.0")
    assert box.updates.apply(t2).state == "committed"  # the box has now seen the newer timestamp
    t3 = release(repo, tmp, "1.2.0")
    (repo.dir / "repository" / "metadata" / "timestamp.json").write_bytes(old_timestamp)  # freeze/replay attack
    status = box.updates.apply(t3)
    assert status.state == "refused" and status.detail.startswith("metadata_rollback:"), status.detail
    assert box.running() == ("b", "1.1.0")


def test_refuses_targets_signed_by_an_unknown_key(setup):
    repo, box, tmp = setup
    model = write_sim_model(tmp / "evil", "line-a", "6.6.6")
    bundle = make_bundle(model, tmp / "evil.tar.gz", "line-a", "6.6.6")
    rogue = CryptoSigner.generate_ed25519()
    target = "models/evil.tar.gz"
    info = TargetFile.from_file(target, str(bundle), ["sha256"])
    info.unrecognized_fields["custom"] = {"version": "6.6.6", "kind": "model"}
    dest = repo.dir / "repository" / "targets" / "models" / f"{info.hashes['sha256']}.evil.tar.gz"
    shutil.copyfile(bundle, dest)
    md = repo.md["targets"]
    md.signed.targets[target] = info
    md.signed.version += 1
    md.signatures.clear()
    md.sign(rogue)  # only the attacker's key, which root does not trust for targets
    (repo.dir / "repository" / "metadata" / f"{md.signed.version}.targets.json").write_bytes(md.to_bytes())
    # the snapshot and timestamp keys are honest (or also stolen): they vouch for the rogue targets file
    from tuf.api.metadata import MetaFile

    repo.md["snapshot"].signed.meta["targets.json"] = MetaFile(version=md.signed.version)
    repo._bump("snapshot", None)
    repo._sign_and_save("snapshot")
    repo._bump("timestamp", None)
    repo._update_timestamp_meta()
    repo._sign_and_save("timestamp")
    repo._publish(["snapshot", "timestamp"])
    assert_refused(box, box.updates.apply(target), "untrusted")


def test_failed_health_check_rolls_back(setup):
    repo, box, tmp = setup
    for mode in ("nan", "crash"):
        t_bad = release(repo, tmp, "1.1.0" if mode == "nan" else "1.1.1", mode=mode)
        status = box.updates.apply(t_bad)
        assert status.state == "rolled_back", status
        assert box.running() == ("a", "1.0.0")
        assert box.slots.state.slots["b"].status == "bad"
        assert box.serving == ["line-a@1.0.0"]
    # a good release afterwards still installs
    assert box.updates.apply(release(repo, tmp, "1.2.0")).state == "committed"
    assert box.running() == ("b", "1.2.0")


def test_restart_during_trial_rolls_back(setup):
    repo, box, tmp = setup
    t2 = release(repo, tmp, "1.1.0")
    box.updates.health.run = lambda _d: (_ for _ in ()).throw(SystemExit("power cut during the health check"))
    with pytest.raises(SystemExit):
        box.updates.apply(t2)
    assert box.slots.state.trial and box.slots.state.active == "b"
    fresh = SlotManager(box.slots.dir)  # the agent starts again
    assert fresh.recover() is True
    assert fresh.state.active == "a" and fresh.committed().version == "1.0.0"


def test_key_rotation_is_followed_by_the_box(setup):
    repo, box, tmp = setup
    for role in ("timestamp", "snapshot", "targets", "root"):
        repo.rotate_key(role)
    assert box.updates.apply(release(repo, tmp, "1.1.0")).state == "committed"
    assert (box.slots.dir / "tuf" / "metadata" / "root.json").read_bytes() == (
        repo.dir / "repository" / "metadata" / "root.json").read_bytes()
