"""Which inspection pipeline the agent runs, and the sample frames its health checks use.

``inspection`` (the default) is the suite's inspection engine
(``npusuite.inspection.inspector``), built by the same adapter the platform
engine runs on the live line (:mod:`npusuite.inspection.adapter`); ``sim`` is :mod:`npusuite.edge.simulate`'s tiny
simulated model, for fleet simulations and benchmarks.  Both are loaded from a
model folder by an :data:`~npusuite.edge.health.InspectorFactory`.

Health-check samples come from a folder of images; if it has ``good/`` and
``ng/`` sub-folders their names are the expected verdicts, so the check can
also require agreement with known parts.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from npusuite.edge.health import InspectorFactory
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

PIPELINES = ("inspection", "sim")


def inspection_factory(model_dir: Path) -> Any:
    """Build the inspector for ``model_dir`` by the platform engine's adapter rules (card, input size vs net,
    warm-up on a calibration image: :class:`~npusuite.inspection.adapter.InspectionAdapter`), so a bundle the
    live line's engine would refuse fails the edge's health check at its load step.  Raises UserError when the
    inspection engine is not installed, or the model does not fit."""
    try:
        from npusuite.inspection.adapter import InspectionAdapter  # the inspection engine (docs/inspection-api.md)
    except ImportError as exc:
        raise UserError("the inspection engine (npusuite.inspection.inspector) is not available in this build; "
                        "use --pipeline sim for a simulated line") from exc
    from npusuite.platform.repository import resolve_reference
    from npusuite.platform.runtime.servable import load_version

    version = resolve_reference(Path(model_dir))
    adapter = InspectionAdapter()
    inspector = adapter.build(version, load_version(version))
    adapter.warm(inspector)
    return inspector


def factory_for(pipeline: str) -> InspectorFactory:
    if pipeline == "sim":
        from npusuite.edge.simulate import sim_factory

        return sim_factory
    if pipeline == "inspection":
        return inspection_factory
    raise UserError(f"--pipeline must be one of {', '.join(PIPELINES)}")


def load_samples(folder: Path, limit: int = 16) -> tuple[list[Any], list[bool] | None]:
    """Frames from ``folder`` (``good/`` + ``ng/`` give expected verdicts).  Raises UserError if none.

    Images are decoded by :mod:`npusuite.inspection.images` (size-checked before decoding); a refused
    file is skipped with a warning.
    """
    from npusuite.inspection.images import IMAGE_SUFFIXES, list_images, scan_folder
    from npusuite.inspection.records import Frame

    folder = Path(folder)
    labelled = (folder / "good").is_dir() and (folder / "ng").is_dir()
    groups = [(folder / "good", False), (folder / "ng", True)] if labelled else [(folder, None)]
    frames, expected = [], []
    for sub, ng in groups:
        for i, item in enumerate(scan_folder(folder, list_images(sub)[:limit])):
            if item.image is None:
                continue
            frames.append(Frame(image=item.image, timestamp=time.time(), source=str(folder), seq=i, name=item.name))
            expected.append(bool(ng))
    if not frames:
        raise UserError(f"no sample images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return frames, expected if labelled else None
