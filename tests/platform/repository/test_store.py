"""Model repository: versions, manifests, checksums, atomic aliases, references, and the `models` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from npusuite.platform.errors import NotFoundError, UserError
from npusuite.platform.repository import CorruptModelError, ModelRepository, resolve_reference
from npusuite.platform.runtime.reference_models import save_scale


def test_add_writes_manifest_with_every_checksum(tmp_path: Path):
    repo = ModelRepository(tmp_path / "models")
    mv = repo.add("scale", save_scale(tmp_path / "src", 1.5), metadata={"card": "test model", "threshold": 0.7})
    assert mv.ref == "scale@1"
    manifest = json.loads((mv.path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.safetensors", "module.json"}
    assert manifest["kind"] == "torch-module" and manifest["precision"] == "fp32"
    assert manifest["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert manifest["metadata"]["threshold"] == 0.7 and manifest["created"].endswith("Z")
    assert manifest["arch_module"] == "npusuite.platform.runtime.reference_models"
    assert repo.aliases("scale") == {"production": "1"}  # the first version becomes production


def test_versions_promote_rollback_and_references(tmp_path: Path):
    repo = ModelRepository(tmp_path / "models")
    for factor in (1.0, 2.0, 3.0):
        repo.add("scale", save_scale(tmp_path / f"src{factor}", factor))
    assert repo.versions("scale") == ["1", "2", "3"]
    assert repo.promote("scale", "2") == "1"
    repo.promote("scale", "3", "canary")
    assert repo.resolve_ref("scale").version == "2"
    assert repo.resolve_ref("scale@canary").version == "3"
    assert repo.resolve_ref("scale@1").version == "1"
    repo.promote("scale", "3")
    assert repo.rollback("scale") == "2"
    assert repo.rollback("scale") == "1"
    with pytest.raises(UserError, match="no earlier version"):
        repo.rollback("scale")
    assert resolve_reference("scale@canary", tmp_path / "models").version == "3"
    assert resolve_reference(tmp_path / "models" / "scale" / "2").ref == "scale@2"
    assert resolve_reference(tmp_path / "src1.0").version == "local"  # a plain model folder
    assert not list((tmp_path / "models" / "scale").glob(".*"))  # no temp files left behind


def test_unknown_and_immutable(tmp_path: Path):
    repo = ModelRepository(tmp_path / "models")
    repo.add("scale", save_scale(tmp_path / "src", 1.0), version="v1")
    with pytest.raises(NotFoundError, match="unknown model 'nope'"):
        repo.resolve("nope")
    with pytest.raises(NotFoundError, match="no version or alias 'v9'"):
        repo.resolve("scale", "v9")
    with pytest.raises(UserError, match="immutable"):
        repo.add("scale", tmp_path / "src", version="v1")
    with pytest.raises(UserError, match="invalid model name"):
        repo.add("../evil", tmp_path / "src")
    with pytest.raises(UserError, match="not a model folder"):
        repo.add("empty", tmp_path)


@pytest.mark.parametrize("damage", ["flip", "delete", "extra"])
def test_damaged_version_is_refused(tmp_path: Path, damage: str):
    repo = ModelRepository(tmp_path / "models")
    mv = repo.add("scale", save_scale(tmp_path / "src", 1.0))
    weights = mv.path / "model.safetensors"
    if damage == "flip":
        raw = bytearray(weights.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        weights.write_bytes(bytes(raw))
        match = "checksum mismatch for model.safetensors"
    elif damage == "delete":
        weights.unlink()
        match = "model.safetensors is missing"
    else:
        (mv.path / "payload.py").write_text("print('hi')")
        match = "not in the manifest"
    with pytest.raises(CorruptModelError, match=match):
        repo.resolve("scale")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", *args], capture_output=True, text=True,
                          timeout=120)


def test_models_cli(tmp_path: Path):
    root = str(tmp_path / "models")
    save_scale(tmp_path / "a", 1.0)
    save_scale(tmp_path / "b", 2.0)
    assert _cli("models", "add", "--root", root, "scale", str(tmp_path / "a")).returncode == 0
    out = _cli("models", "add", "--root", root, "scale", str(tmp_path / "b"), "--precision", "bf16")
    assert out.returncode == 0 and "scale@2" in out.stdout
    assert _cli("models", "list", "--root", root).stdout.strip() == "scale: 1 [production], 2"
    assert _cli("models", "promote", "--root", root, "scale", "2").stdout.strip() == "scale@production: 1 -> 2"
    shown = _cli("models", "show", "--root", root, "scale")
    assert json.loads(shown.stdout)["precision"] == "bf16"
    assert _cli("models", "rollback", "--root", root, "scale").stdout.strip() == "scale@production -> 1"
    bad = _cli("models", "show", "--root", root, "scale@7")
    assert bad.returncode == 2 and bad.stderr.startswith("npusuite: error:") and len(bad.stderr.splitlines()) == 1
    missing = _cli("models", "add", "--root", root, "x", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
