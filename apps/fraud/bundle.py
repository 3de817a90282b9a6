"""A trained fraud model pair on disk, and loading it by folder or repository reference.

Layout written by ``fraud train --out MODEL_DIR``::

    MODEL_DIR/fast/   model.safetensors, module.json, card.json   (architecture fraud-mlp)
    MODEL_DIR/llm/    config.json, model.safetensors, tokenizer files, card.json
    MODEL_DIR/card.json   the combined model card (data, metrics, thresholds)

With ``--model-root ROOT`` the two folders are also added to the platform's
model repository as versions of ``<name>-fast`` and ``<name>-llm``; the fast
card names the LLM version it was trained with (``"llm": "fraud-llm@3"``).

Rules for :func:`load_scorer` (the one loader offline scoring and the live
service share):
- ``ref`` may be a MODEL_DIR as above, a fast-model folder, or a repository
  reference (``fraud-fast``, ``fraud-fast@3``, ``fraud-fast@canary``) resolved
  in ``model_root`` with checksums verified.
- The LLM tier loads from ``MODEL_DIR/llm`` or from the card's ``llm``
  reference; ``with_llm=False`` skips it.  An LLM that fails to load is
  logged and the scorer runs without it (its grey band then falls back with
  reason ``llm_unavailable``); a fast model that fails to load raises.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from npusuite.platform.errors import NotFoundError, UserError

logger = logging.getLogger(__name__)

#: Every fraud model folder's card (fast model, LLM verdict, novelty).
CARD = "card.json"


def read_card(folder: Path, ref: str | None = None) -> dict:
    """``FOLDER/card.json``, or ``{}`` when the folder has none.

    Raises UserError when the card exists but cannot be read or parsed.
    """
    path = Path(folder) / CARD
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{ref or folder}: unreadable {CARD}: {exc}") from None


def _latest_plus_one(repo, name: str) -> str:
    numeric = [int(v) for v in repo.versions(name) if v.isdigit()] if (repo.root / name).is_dir() else []
    return str(max(numeric, default=0) + 1)


def next_versions(model_root: Path | None, name: str) -> tuple[str, str]:
    """The versions ``fraud train`` will add for ``<name>-fast`` and ``<name>-llm``."""
    if model_root is None:
        return "local", "local"
    from npusuite.platform.repository import ModelRepository

    repo = ModelRepository(model_root)
    return _latest_plus_one(repo, f"{name}-fast"), _latest_plus_one(repo, f"{name}-llm")


def publish(out_dir: Path, model_root: Path, name: str, card: dict, promote: bool) -> dict[str, str]:
    """Add ``out_dir/llm`` and ``out_dir/fast`` to the repository; returns {"fast": ref, "llm": ref}."""
    from npusuite.platform.repository import ModelRepository

    repo = ModelRepository(model_root)
    refs = {}
    if (out_dir / "llm").is_dir():
        llm_card = card.get("llm_card", {})
        v = repo.add(f"{name}-llm", out_dir / "llm", version=card["llm"].split("@")[1], kind="causal-lm",
                     precision=llm_card.get("precision", "int8"), metadata={"model_card": llm_card})
        refs["llm"] = v.ref
    fast_card = {k: v for k, v in card.items() if k != "llm_card"}
    v = repo.add(f"{name}-fast", out_dir / "fast", version=card["ref"].split("@")[1],
                 metadata={"model_card": fast_card},  # arch_module: module.json's (MLP or boosted trees)
                 inputs=[{"name": "features", "datatype": "FP32", "shape": [-1, len(card["features"])]}],
                 outputs=[{"name": "probability", "datatype": "FP32", "shape": [-1]}])
    refs["fast"] = v.ref
    if promote:
        for key, ref in refs.items():
            model, version = ref.split("@")
            repo.promote(model, version)
            logger.info("promoted %s to production (%s)", ref, key)
    return refs


def load_scorer(ref: str | Path, model_root: Path | None = None, with_llm: bool = True, device: str = "cpu",
                **threshold_overrides: float):
    """Build a :class:`TieredScorer` for ``ref``.

    Raises NotFoundError (nothing at ``ref``), CorruptModelError (checksums, weights), UserError.
    """
    from npusuite.fraud.fast_model import FastModel
    from npusuite.fraud.llm_verdict import LlmVerdictModel
    from npusuite.fraud.scorer import ScorerConfig, TieredScorer
    from npusuite.platform.repository import resolve_reference

    path = Path(ref)
    llm_folder: Path | None = None
    llm_ref: str | None = None
    if path.is_dir() and (path / "fast").is_dir():
        fast = FastModel.load(path / "fast")
        if (path / "llm").is_dir():
            llm_folder = path / "llm"
            llm_ref = fast.card.get("llm")
    else:
        if not path.is_dir() and model_root is None and ("/" in str(ref) or str(ref).endswith(".json")):
            raise NotFoundError(f"{ref}: no such model folder")
        version = resolve_reference(str(ref), model_root)
        fast = FastModel.load(version.path, ref=version.ref)
        if fast.card.get("llm") and model_root is not None:
            try:
                llm_version = resolve_reference(fast.card["llm"], model_root)
                llm_folder, llm_ref = llm_version.path, llm_version.ref
            except UserError as exc:
                logger.warning("LLM %s named by %s cannot be resolved: %s", fast.card["llm"], fast.ref, exc)
    if "thresholds" not in fast.card:
        raise UserError(f"{ref}: the fast model has no thresholds in its card (not made by `fraud train`?)")
    llm = None
    if with_llm and llm_folder is not None:
        try:
            llm = LlmVerdictModel.load(llm_folder, ref=llm_ref, device=device)
        except Exception as exc:  # the scorer falls back to the fast model
            logger.error("cannot load the LLM verdict model from %s, scoring without it: %s", llm_folder, exc)
    try:
        config = ScorerConfig.from_card(fast.card, **threshold_overrides)
    except ValueError as exc:
        raise UserError(f"{ref}: thresholds: {exc}") from None
    logger.info("scorer: fast %s, LLM %s, thresholds %s", fast.ref, llm.ref if llm else None, config)
    return TieredScorer(fast, llm, config)
