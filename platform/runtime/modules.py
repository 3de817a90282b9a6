"""Torch-module models: an architecture registered by name plus a state_dict.

Rules:
- An architecture is an ``nn.Module`` class decorated with
  ``@register_architecture("name")``; its constructor takes keyword config only.
- :func:`save_module` writes ``model.safetensors`` (the state_dict) and
  ``module.json`` (architecture name, the module that registers it, the config,
  and optional tensor specs) into a folder the repository accepts.
- :func:`load_module` imports the registering module, builds the class from
  the config and loads the weights strictly; unreadable or mismatched weights
  raise :class:`CorruptModelError`, an unknown architecture raises UserError.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

from npusuite.platform.errors import UserError
from npusuite.platform.repository.manifest import CorruptModelError

logger = logging.getLogger(__name__)

_ARCHITECTURES: dict[str, type] = {}
WEIGHTS = "model.safetensors"
CONFIG = "module.json"


def register_architecture(name: str):
    """Class decorator: make an ``nn.Module`` loadable by ``name``."""
    def deco(cls: type) -> type:
        existing = _ARCHITECTURES.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"architecture {name!r} is already registered by {existing.__module__}")
        cls.architecture_name = name
        _ARCHITECTURES[name] = cls
        return cls
    return deco


def architecture(name: str) -> type:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise UserError(f"unknown architecture {name!r} (registered: {', '.join(sorted(_ARCHITECTURES))})") from None


def save_module(module, out_dir: Path | str, arch: str, config: dict[str, Any], *,
                inputs: list[dict] | None = None, outputs: list[dict] | None = None) -> Path:
    """Write ``model.safetensors`` + ``module.json``; returns the folder."""
    from safetensors.torch import save_file

    architecture(arch)  # must be registered, so loading can find it
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / WEIGHTS))
    info = {"architecture": arch, "arch_module": type(module).__module__, "config": config,
            "inputs": inputs or [], "outputs": outputs or []}
    (out / CONFIG).write_text(json.dumps(info, indent=2) + "\n")
    return out


def read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / CONFIG).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"{folder}: unreadable {CONFIG}: {exc}") from None


def load_module(folder: Path | str, device=None, dtype=None):
    """Build the registered architecture from ``module.json`` and load its weights (eval mode)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = read_config(folder)
    if info.get("arch_module"):
        try:
            importlib.import_module(info["arch_module"])
        except ImportError as exc:
            raise UserError(f"{folder}: cannot import {info['arch_module']} to register its architecture: "
                            f"{exc}") from None
    cls = architecture(info["architecture"])
    module = cls(**info.get("config", {}))
    try:
        state = load_file(str(folder / WEIGHTS))
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors raises its own types for truncated/garbled files
        raise CorruptModelError(f"{folder}: cannot load weights: {str(exc).splitlines()[0]}") from None
    if dtype is not None:
        module = module.to(dtype)
    if device is not None:
        module = module.to(device)
    return module.eval()
