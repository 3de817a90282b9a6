"""Which inspection pipeline the agent runs, and the sample frames its health checks use.

``inspection`` (the default) is the suite's inspection engine
(``npusuite.inspection.inspector``) served by a platform
:class:`~npusuite.platform.engine.ModelEngine` with the same adapter the live
line's engine runs (:mod:`npusuite.inspection.adapter`):
:class:`EngineInspectors`.  The model folder picks the platform runtime: a
bundle built from ``npusuite inspection export`` carries ``model.onnx`` and
runs on ONNX Runtime (execution provider from ``--device``: CPU, CUDA, or
CANN on an Ascend 310B); a torch model folder runs on torch.
``--precision int8`` runs the bundle's int8 graph (ONNX: the one its export
kept; torch: quantised at load).  Every model the agent takes, the first one
and each update, goes through ``ModelEngine.load_path``: the adapter builds
and warms the candidate BESIDE the serving version, then (for an update) the
update's health check runs on that same candidate inside the engine's load,
and only a candidate that passes both is switched to; a refused one changes
nothing (the slot is rolled back, the serving version keeps inspecting).
Frames run under engine leases, so a frame finishes on the version it
started with and the old version is freed when drained.

``sim`` is :mod:`npusuite.edge.simulate`'s tiny simulated model, ONLY for
fleet-scale simulations (twenty boxes on two cores); it is no platform model
(no manifest, no weights), so it stays in the plain
:class:`~npusuite.edge.agent.InspectorHolder` with the same ``install`` rule
(build, check, then swap).

Health-check samples, by default, are the candidate bundle's own calibration
images (``model/calibration.safetensors``: good parts held back at training,
expected OK): :func:`bundle_samples`.  ``--health-samples DIR`` replaces them
with a folder of images; if it has ``good/`` and ``ng/`` sub-folders their
names are the expected verdicts, so the check can also require agreement with
known defects.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npusuite.edge.agent import CandidateCheck, InspectorHolder, Inspectors
from npusuite.edge.health import HealthReport, Inspector, InspectorFactory
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

PIPELINES = ("inspection", "sim")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class InspectionFactory:
    """Builds the inspector for a model folder by the platform engine's adapter rules (card, input size vs net,
    warm-up on a calibration image: :class:`~npusuite.inspection.adapter.InspectionAdapter`), on ``device`` at
    ``precision``, so a bundle the live line's engine would refuse fails the edge's health check at its load
    step.  Calling it raises UserError when the inspection engine is not installed, or the model does not fit."""

    device: str = "cpu"
    precision: str = "fp32"

    def __call__(self, model_dir: Path) -> Any:
        from npusuite.platform.repository import resolve_reference
        from npusuite.platform.runtime.servable import load_version

        adapter = _adapter_class()(precision=self.precision)
        version = resolve_reference(Path(model_dir))
        inspector = adapter.build(version, load_version(version, self.device))
        adapter.warm(inspector)
        return inspector


#: the default factory: CPU, fp32
inspection_factory = InspectionFactory()


def _adapter_class() -> type:
    try:
        from npusuite.inspection.adapter import InspectionAdapter  # the inspection engine (docs/inspection-api.md)
    except ImportError as exc:
        raise UserError("the inspection engine (npusuite.inspection.inspector) is not available in this build; "
                        "use --pipeline sim for a simulated line") from exc
    return InspectionAdapter


class EngineInspectors:
    """The agent's :class:`~npusuite.edge.agent.Inspectors` for ``--pipeline inspection`` (see the module rules)."""

    def __init__(self, device: str = "cpu", precision: str = "fp32") -> None:
        from npusuite.platform.engine import ModelEngine

        InspectionAdapter = _adapter_class()

        class CheckedAdapter(InspectionAdapter):
            """The inspection adapter; its warm-up also runs the armed health check on the candidate."""

            check: CandidateCheck | None = None
            report: HealthReport | None = None

            def warm(self, app) -> None:
                super().warm(app)
                if self.check is not None:
                    self.report = self.check(app)
                    if not self.report.ok:
                        raise UserError(f"health check failed: {self.report.reason}")

        self.adapter = CheckedAdapter(precision=precision)
        self.engine = ModelEngine("edge-model", None, device, adapter=self.adapter)
        self.ready = threading.Event()
        self._install_lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self) -> Iterator[tuple[Inspector | None, str | None]]:
        if not self.engine.ready:
            yield None, None
            return
        with self.engine.lease() as lease:
            # the inspector's ref is the install's label (load_path names the version after it), else its own
            yield lease.app, lease.app.ref

    def install(self, model_dir: Path, label: str | None = None, check: CandidateCheck | None = None) -> HealthReport:
        from npusuite.platform.engine import SwapError

        with self._install_lock:  # the armed check belongs to this install only
            self.adapter.check, self.adapter.report = check, None
            try:
                self.engine.load_path(Path(model_dir), label)
            except SwapError as exc:
                report = self.adapter.report
                if report is not None and not report.ok:
                    return report
                return HealthReport(False, f"load failed: {exc}")
            finally:
                self.adapter.check = None
            report = self.adapter.report or HealthReport(True, "ok", model=self.engine.ref)
        self.ready.set()
        return report

    @property
    def ref(self) -> str | None:
        return self.engine.ref

    def close(self) -> None:
        self.engine.close()


def inspectors_for(factory: InspectorFactory) -> Inspectors:
    """The agent's model holder for a pipeline's factory: the platform engine for the inspection engine, the
    plain holder for anything else (``sim``)."""
    if isinstance(factory, InspectionFactory):
        return EngineInspectors(factory.device, factory.precision)
    return InspectorHolder(factory=factory)


def factory_for(pipeline: str, device: str = "cpu", precision: str = "fp32") -> InspectorFactory:
    """The inspector factory of ``pipeline`` (``sim`` ignores device and precision).  Raises UserError."""
    if pipeline == "sim":
        from npusuite.edge.simulate import sim_factory

        return sim_factory
    if pipeline == "inspection":
        if precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}")
        from npusuite.platform.runtime.devices import get_device

        get_device(device, check=False)  # an unknown device class is a start-up error, not a failed update
        return InspectionFactory(device, precision)
    raise UserError(f"--pipeline must be one of {', '.join(PIPELINES)}")


def bundle_samples(model_dir: Path, limit: int = 16) -> tuple[list[Any], list[bool]]:
    """The model folder's calibration images as frames, all expected OK (they are held-back good parts).
    Raises UserError when the folder stores none."""
    from npusuite.inspection.samples import calibration_frames

    frames = calibration_frames(Path(model_dir), limit)
    return frames, [False] * len(frames)


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
