"""Update bundles: what a release signs and a box installs into a slot.

A bundle is a ``.tar.gz`` holding ``bundle.json`` (``{"name", "version",
"kind"}``) and a ``model/`` folder: a model directory as the
platform repository stores it (``manifest.json`` + weights), which the
inspection pipeline loads.  App or firmware bundles carry their files next to
``bundle.json`` instead.  Archives are built deterministically (sorted names,
fixed mtimes and owners), so the same input signs to the same sha256.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
from pathlib import Path

from npusuite.platform.errors import NotFoundError

logger = logging.getLogger(__name__)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_bundle(model_dir: Path, out_file: Path, name: str, version: str, kind: str = "model") -> Path:
    """Pack ``model_dir`` as ``model/`` with a ``bundle.json``.  Raises NotFoundError for a missing folder."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise NotFoundError(f"no such model folder: {model_dir}")
    meta = {"name": name, "version": version, "kind": kind}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "bundle.json", json.dumps(meta, indent=2).encode())
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                _add_bytes(tar, f"model/{path.relative_to(model_dir).as_posix()}", path.read_bytes())
    out_file.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    logger.info("bundled %s as %s %s (%d bytes)", model_dir, name, version, out_file.stat().st_size)
    return out_file


def read_bundle_meta(bundle_dir: Path) -> dict:
    return json.loads((Path(bundle_dir) / "bundle.json").read_text())
