"""Model repository: ``ROOT/<name>/<version>/`` with manifests, checksums and aliases."""

from npusuite.platform.repository.manifest import CorruptModelError, Manifest, TensorSpec
from npusuite.platform.repository.store import ModelRepository, ModelVersion, resolve_reference

__all__ = ["CorruptModelError", "Manifest", "ModelRepository", "ModelVersion", "TensorSpec", "resolve_reference"]
