"""The manifest of one model version: what it is and the sha256 of every file.

Rules:
- ``manifest.json`` sits in the version folder beside the files it describes;
  it lists every other file with its sha256, and nothing outside the folder.
- :func:`verify` recomputes every checksum; a missing, changed or unlisted
  weight file refuses the whole version (:class:`CorruptModelError`), naming
  the first bad file, so a half-copied or tampered model is never loaded.
- ``kind`` selects the runtime that loads it (see ``npusuite.platform.runtime.loader``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KINDS = ("causal-lm", "torch-module", "onnx", "data")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class CorruptModelError(UserError):
    """A model version's files do not match its manifest (missing, changed, or no manifest)."""


class TensorSpec(BaseModel):
    """One named input or output tensor, as KServe v2 metadata states it (-1 = any size)."""

    name: str
    datatype: str = "FP32"
    shape: list[int] = Field(default_factory=lambda: [-1])


class Manifest(BaseModel):
    name: str
    version: str
    kind: str
    framework: str
    precision: str = "fp32"
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")
    #: Python module to import so a torch-module architecture is registered before loading.
    arch_module: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under ``folder`` except the manifest itself."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            out[path.relative_to(folder).as_posix()] = sha256_file(path)
    return out


def read(folder: Path) -> Manifest:
    """Read ``folder/manifest.json``.  Raises CorruptModelError if missing or malformed."""
    path = folder / MANIFEST
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CorruptModelError(f"{folder}: no {MANIFEST}") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise CorruptModelError(f"{path}: malformed manifest: {str(exc).splitlines()[0]}") from None


def write(folder: Path, manifest: Manifest) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest.model_dump(), indent=2) + "\n")


def verify(folder: Path, manifest: Manifest) -> None:
    """Recompute every checksum.  Raises CorruptModelError naming the first bad file."""
    if not manifest.files:
        raise CorruptModelError(f"{manifest.name}@{manifest.version}: manifest lists no files")
    for rel, expected in manifest.files.items():
        path = folder / rel
        if not path.is_file():
            raise CorruptModelError(f"{manifest.name}@{manifest.version}: file {rel} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise CorruptModelError(
                f"{manifest.name}@{manifest.version}: checksum mismatch for {rel} "
                f"(manifest {expected[:12]}..., file {actual[:12]}...); refusing to load"
            )
    unlisted = sorted(set(hash_tree(folder)) - set(manifest.files))
    if unlisted:
        raise CorruptModelError(f"{manifest.name}@{manifest.version}: files not in the manifest: {unlisted[:3]}")
