"""The model repository on disk: ``ROOT/<name>/<version>/`` plus aliases.

Layout::

    ROOT/<name>/<version>/manifest.json    kind, precision, tensor specs, sha256 of every file
    ROOT/<name>/<version>/...              the model files (safetensors, config, tokenizer)
    ROOT/<name>/aliases.json               {"aliases": {"production": "2"}, "history": {"production": ["1"]}}
    ROOT/<name>/.documents/<version>/<kind>.json   JSON documents attached to a version (e.g. a comparison)

Rules:
- Versions are immutable once added: ``add`` copies into a temporary folder
  inside ``ROOT/<name>/`` and renames it into place, so a reader never sees a
  half-written version.
- The alias file is replaced atomically (write a temporary file, fsync,
  ``os.replace``); readers see the old or the new mapping, never a mix.
- ``resolve`` verifies every checksum and raises :class:`CorruptModelError`
  (a ``UserError``) on a mismatch, :class:`NotFoundError` on an unknown name,
  version or alias.
- The first version added to a model becomes ``production``; later ones must
  be promoted.  ``rollback`` returns an alias to its previous target.
- A reference is ``name``, ``name@version``, ``name@alias``, or a plain model
  folder (with a manifest, or a folder ``add`` would accept).
- Documents attached to a version (``attach``; e.g. the champion/challenger
  comparison ``models promote --require-comparison`` checks) live beside the
  version, not in it, so the version's files and checksums never change; one
  JSON object per ``kind``, replaced atomically like the alias file.
- Every name, version and alias is checked against
  :data:`~npusuite.platform.repository.names.NAME_PATTERN` before the disk is
  touched, and the folder it names must resolve inside the root
  (:class:`~npusuite.platform.repository.names.InvalidNameError` otherwise), so
  ``..`` or a symlink can never make the repository load or list a folder
  outside its root.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npusuite.platform.errors import NotFoundError, UserError
from npusuite.platform.repository import manifest as mf
from npusuite.platform.repository.manifest import CorruptModelError, Manifest, TensorSpec
from npusuite.platform.repository.names import check_name, folder_under, is_valid_name

logger = logging.getLogger(__name__)

ALIASES = "aliases.json"
#: Hidden folder of ``ROOT/<name>/`` holding documents attached to versions (never listed as a version).
DOCUMENTS = ".documents"


@dataclass(frozen=True)
class ModelVersion:
    """One verified version on disk."""

    name: str
    version: str
    path: Path
    manifest: Manifest

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _version_key(v: str) -> tuple[int, int | str]:
    return (0, int(v)) if v.isdigit() else (1, v)


def describe_source(src: Path) -> dict[str, Any]:
    """Infer manifest fields from a model folder made by this suite (ONNX export, ``save_module`` or HF causal LM).

    A folder with ``model.onnx`` is an ONNX model (:mod:`npusuite.platform.runtime.onnx_runtime`), even
    when it also holds torch weights: the exported graph is what was checked for parity and shipped."""
    from npusuite.platform.runtime.onnx_runtime import describe

    onnx = describe(src)
    if onnx is not None:
        return onnx
    module_json = src / "module.json"
    if module_json.is_file():
        info = json.loads(module_json.read_text())
        return {"kind": "torch-module", "framework": "torch", "arch_module": info.get("arch_module"),
                "inputs": info.get("inputs") or [], "outputs": info.get("outputs") or []}
    config = src / "config.json"
    if config.is_file():
        info = json.loads(config.read_text())
        if any(a.endswith("ForCausalLM") for a in info.get("architectures", [])):
            return {"kind": "causal-lm", "framework": "transformers",
                    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
                    "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]}
    raise UserError(f"{src}: not a model folder this suite knows (no model.onnx, no module.json, "
                    "no causal-LM config.json)")


class ModelRepository:
    """Versions and aliases under one root folder.  Safe for concurrent readers."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ---- reading -------------------------------------------------------------------------
    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_valid_name(p.name))

    def _model_dir(self, name: str) -> Path:
        return folder_under(self.root, check_name("model name", name))

    def model_dir(self, name: str) -> Path:
        """The folder holding ``name``'s versions and its alias file (what alias followers watch)."""
        return self._model_dir(name)

    def _version_dir(self, name: str, version: str) -> Path:
        return folder_under(self.root, check_name("model name", name), check_name("version", version))

    def versions(self, name: str) -> list[str]:
        folder = self._model_dir(name)
        if not folder.is_dir():
            raise NotFoundError(f"unknown model {name!r} in {self.root} (have: {', '.join(self.models()) or 'none'})")
        found = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(found, key=_version_key)

    def _alias_state(self, name: str) -> dict[str, dict]:
        path = self._model_dir(name) / ALIASES
        if not path.exists():
            return {"aliases": {}, "history": {}}
        state = json.loads(path.read_text())
        state.setdefault("aliases", {})
        state.setdefault("history", {})
        return state

    def aliases(self, name: str) -> dict[str, str]:
        self.versions(name)
        return dict(self._alias_state(name)["aliases"])

    def alias_target(self, name: str, alias: str = "production") -> str:
        target = self.aliases(name).get(alias)
        if target is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return target

    def manifest(self, name: str, version: str) -> Manifest:
        """The manifest without checksum verification (for listings)."""
        folder = self._version_dir(name, version)
        if not folder.is_dir():
            raise NotFoundError(f"model {name!r} has no version {version!r} (have: {', '.join(self.versions(name))})")
        return mf.read(folder)

    def resolve(self, name: str, version_or_alias: str = "production", verify: bool = True) -> ModelVersion:
        """Find a version by number or alias and verify its files.

        Raises NotFoundError (unknown model/version/alias) or CorruptModelError.
        """
        versions = self.versions(name)
        check_name("version or alias", version_or_alias)
        version = version_or_alias if version_or_alias in versions else None
        if version is None:
            aliases = self._alias_state(name)["aliases"]
            if version_or_alias not in aliases:
                raise NotFoundError(
                    f"model {name!r} has no version or alias {version_or_alias!r} "
                    f"(versions: {', '.join(versions)}; aliases: {', '.join(aliases) or 'none'})")
            version = aliases[version_or_alias]
        folder = self._version_dir(name, version)
        manifest = mf.read(folder)
        if verify:
            mf.verify(folder, manifest)
        return ModelVersion(name, version, folder, manifest)

    def resolve_ref(self, ref: str, verify: bool = True) -> ModelVersion:
        """``name``, ``name@version``, ``name@alias``; see :func:`resolve_reference` for folders."""
        name, _, tag = ref.partition("@")
        return self.resolve(name, tag or "production", verify=verify)

    # ---- writing -------------------------------------------------------------------------
    def add(self, name: str, src_dir: Path | str, version: str | None = None, *, precision: str | None = None,
            kind: str | None = None, inputs: list[dict] | None = None, outputs: list[dict] | None = None,
            metadata: dict[str, Any] | None = None, arch_module: str | None = None) -> ModelVersion:
        """Copy ``src_dir`` in as a new immutable version and write its manifest.

        Raises UserError on a bad name, an existing version, or an unknown folder.
        """
        src = Path(src_dir)
        if not src.is_dir():
            raise NotFoundError(f"model folder {src} does not exist")
        check_name("model name", name)
        # A "data" version (e.g. a rule set) is files an app reads itself, not a torch model.
        info = describe_source(src) if kind is None else {"kind": kind, "framework": "none" if kind == "data"
                                                           else "torch"}
        if precision is not None and precision not in mf.PRECISIONS:
            raise UserError(f"precision {precision!r}: choose one of {', '.join(mf.PRECISIONS)}")
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        if version is None:
            numeric = [int(v) for v in self.versions(name) if v.isdigit()]
            version = str(max(numeric, default=0) + 1)
        check_name("version", version)
        final = model_dir / version
        if final.exists():
            raise UserError(f"{name}@{version} already exists; versions are immutable, add a new one")
        tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=model_dir))
        try:
            shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(mf.MANIFEST))
            manifest = Manifest(
                name=name, version=version, kind=info["kind"], framework=info["framework"],
                precision=precision or "fp32",
                inputs=[TensorSpec.model_validate(s) for s in (inputs or info.get("inputs") or [])],
                outputs=[TensorSpec.model_validate(s) for s in (outputs or info.get("outputs") or [])],
                files=mf.hash_tree(tmp), arch_module=arch_module or info.get("arch_module"),
                metadata=metadata or {})
            mf.write(tmp, manifest)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("added %s@%s (%s, %s, %d files)", name, version, manifest.kind, manifest.precision,
                    len(manifest.files))
        if "production" not in self._alias_state(name)["aliases"]:
            self.promote(name, version, "production")
        return ModelVersion(name, version, final, manifest)

    def _write_aliases(self, name: str, state: dict) -> None:
        _write_json_atomically(self._model_dir(name) / ALIASES, state)

    def _document_path(self, name: str, version: str, kind: str) -> Path:
        check_name("document kind", kind)
        if version not in self.versions(name):
            raise NotFoundError(f"model {name!r} has no version {version!r}")
        # folder_under: a .documents symlink pointing outside the root is refused like any other
        return folder_under(self.root, check_name("model name", name), DOCUMENTS, version, f"{kind}.json")

    def attach(self, name: str, version: str, kind: str, document: dict[str, Any]) -> Path:
        """Attach a JSON object to an existing version as ``kind`` (replacing an earlier one, atomically).
        Raises NotFoundError (unknown model or version), UserError (bad kind, not a JSON object)."""
        if not isinstance(document, dict):
            raise UserError(f"a document attached to a version must be a JSON object, not {type(document).__name__}")
        path = self._document_path(name, version, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomically(path, document)
        logger.info("attached %s to %s@%s", kind, name, version)
        return path

    def attachment(self, name: str, version: str, kind: str) -> dict[str, Any] | None:
        """The ``kind`` document attached to ``name@version``, or None.  Raises UserError when it is unreadable."""
        path = self._document_path(name, version, kind)
        if not path.is_file():
            return None
        try:
            document = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{name}@{version}: unreadable {kind} document {path}: {exc}") from None
        if not isinstance(document, dict):
            raise UserError(f"{name}@{version}: {kind} document {path} is not a JSON object")
        return document

    def promote(self, name: str, version: str, alias: str = "production") -> str | None:
        """Point ``alias`` at ``version`` (which must exist).  Returns the previous target."""
        check_name("alias", alias)
        if version not in self.versions(name):
            raise NotFoundError(f"model {name!r} has no version {version!r}")
        state = self._alias_state(name)
        previous = state["aliases"].get(alias)
        if previous == version:
            return previous
        if previous is not None:
            state["history"].setdefault(alias, []).append(previous)
        state["aliases"][alias] = version
        self._write_aliases(name, state)
        logger.info("alias %s@%s -> %s (was %s)", name, alias, version, previous)
        return previous

    def rollback(self, name: str, alias: str = "production") -> str:
        """Return ``alias`` to its previous target.  Raises UserError when there is none."""
        check_name("alias", alias)
        state = self._alias_state(name)
        history = state["history"].get(alias) or []
        if not history:
            raise UserError(f"{name}@{alias} has no earlier version to roll back to")
        target = history.pop()
        current = state["aliases"].get(alias)
        state["aliases"][alias] = target
        self._write_aliases(name, state)
        logger.info("rolled back %s@%s: %s -> %s", name, alias, current, target)
        return target


def _write_json_atomically(path: Path, document: dict) -> None:
    """Temporary file in the same folder, fsync, ``os.replace``: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_reference(ref: str | Path, root: Path | str | None = None, verify: bool = True) -> ModelVersion:
    """Resolve ``name[@version|@alias]`` in ``root``, or a plain model folder.

    A folder with a manifest is verified like a repository version; a folder
    without one (fresh from ``save_module``/``make-tiny-llm``) is described on the fly.
    Raises NotFoundError / CorruptModelError / UserError.
    """
    path = Path(ref)
    if path.is_dir():
        if (path / mf.MANIFEST).is_file():
            manifest = mf.read(path)
            if verify:
                mf.verify(path, manifest)
            return ModelVersion(manifest.name, manifest.version, path, manifest)
        info = describe_source(path)
        manifest = Manifest(name=path.name, version="local", kind=info["kind"], framework=info["framework"],
                            inputs=info.get("inputs") or [], outputs=info.get("outputs") or [],
                            arch_module=info.get("arch_module"), files=mf.hash_tree(path))
        return ModelVersion(path.name, "local", path, manifest)
    if root is None:
        raise NotFoundError(f"{ref}: no such model folder (and no model repository given)")
    return ModelRepository(root).resolve_ref(str(ref), verify=verify)


__all__ = ["CorruptModelError", "ModelRepository", "ModelVersion", "resolve_reference"]
