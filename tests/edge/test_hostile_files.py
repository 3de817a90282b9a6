"""Hostile files on the box: a bundle whose members escape its slot, health samples that are image bombs."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from npusuite.edge.pipeline import load_samples
from npusuite.edge.slots import BundleError, SlotManager
from npusuite.platform.errors import UserError
from tests.inspection.test_images import huge_png


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_file("bundle.json", b'{"name": "x", "version": "1.0.0", "kind": "model"}'),
                    io.BytesIO(b'{"name": "x", "version": "1.0.0", "kind": "model"}'))
        for m in members:
            tar.addfile(m, io.BytesIO(b"evil") if m.isfile() else None)
    return path


def _file(name: str, data: bytes = b"evil") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member", [_file("../../escaped.txt"),
                                    _link("model/link", "../../../../escaped.txt", tarfile.SYMTYPE),
                                    _link("model/hard", "/etc/passwd", tarfile.LNKTYPE)], ids=lambda m: m.name)
def test_a_bundle_member_escaping_the_slot_is_refused_and_the_slot_untouched(tmp_path: Path, member):
    box = tmp_path / "box"
    slots = SlotManager(box)
    bundle = _tar(tmp_path / "evil.tgz", [member])
    with pytest.raises(BundleError, match="not a valid bundle archive"):
        slots.install(bundle, "models/evil.tgz", "1.0.0")
    assert not (tmp_path / "escaped.txt").exists()
    assert all(s.status == "empty" for s in slots.state.slots.values())
    assert not slots.bundle_dir(slots.inactive).exists()


def test_health_samples_over_the_image_size_limit_are_skipped_before_decoding(tmp_path: Path):
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(huge_png())
    with pytest.raises(UserError, match="no sample images"):
        load_samples(folder)
    cv2.imwrite(str(folder / "ok.png"), np.zeros((64, 64, 3), np.uint8))
    frames, expected = load_samples(folder)
    assert [f.name for f in frames] == ["ok.png"] and expected is None
