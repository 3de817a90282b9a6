"""QC decisions fed back into training: ``inspection/decisions.jsonl`` from ``review export-labels``.

Each line describes one exported image of a closed NG case: ``image`` (a path
relative to the file's folder), ``outcome`` (``false_reject``: QC overruled
the model, the part is good; ``confirmed_defect``), ``defect_type`` (a
:class:`~npusuite.platform.contracts.labels.DefectKind` value for confirmed
defects) and ``product``.

Rules:

- Only decisions for the product being trained count; the others are
  counted as skipped (and logged), since a washer's false reject is no good
  fabric.
- False rejects join the good images (training and the held-back calibration
  split); confirmed defects are never trained on: they form the held-back
  defect set the trained nets are evaluated on.
- Refused with :class:`UserError` naming file and line, before any training:
  a missing file, a line that is not a decision, a defect type outside the
  vocabulary, an image path that leaves the file's folder or names no file.
- Nothing here reads pixels; :mod:`npusuite.inspection.train` loads the images
  (same size rule as the good images).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from npusuite.platform.contracts.labels import DefectKind
from npusuite.platform.errors import SchemaError, UserError
from npusuite.platform.records import load_json_object, validation_reason

logger = logging.getLogger(__name__)


class Decision(BaseModel):
    """One line of ``inspection/decisions.jsonl`` (other fields of the line are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    image: str = Field(min_length=1, max_length=1024)
    outcome: Literal["false_reject", "confirmed_defect"]
    defect_type: DefectKind | None = None
    product: str | None = Field(default=None, max_length=64)


@dataclass
class Feedback:
    """The decisions for one product: image paths to add to the good set, and the held-back defect set."""

    file: Path
    product: str
    good: list[Path] = field(default_factory=list)
    defects: list[tuple[Path, str]] = field(default_factory=list)
    skipped_other_product: int = 0

    def report(self, base: Path | None = None) -> dict:
        """The counts and files, for the training summary (paths relative to BASE, the file's folder by default)."""
        base = base or self.file.parent
        return {"file": str(self.file), "product": self.product, "good_added": len(self.good),
                "good_files": [p.relative_to(base).as_posix() for p in self.good],
                "defects": len(self.defects),
                "defect_files": [p.relative_to(base).as_posix() for p, _ in self.defects],
                "defect_types": sorted({t for _, t in self.defects}),
                "skipped_other_product": self.skipped_other_product}


def _image_path(base: Path, rel: str, where: str) -> Path:
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise UserError(f"{where}: field 'image': {rel!r} leaves the folder of the decisions file")
    if not path.is_file():
        raise UserError(f"{where}: field 'image': no such file {rel!r}")
    return path


def read_feedback(path: Path, product: str) -> Feedback:
    """The decisions in PATH for PRODUCT.  Raises UserError (see module doc)."""
    if not path.is_file():
        raise UserError(f"--feedback {path}: no such file")
    base = path.parent.resolve()
    out = Feedback(path, product)
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                decision = Decision.model_validate(load_json_object(line))
            except ValidationError as exc:
                raise UserError(f"{where}: {validation_reason(exc)}") from None
            except SchemaError as exc:
                raise UserError(f"{where}: {exc}") from None
            if decision.product != product:
                out.skipped_other_product += 1
                continue
            image = _image_path(base, decision.image, where)
            if decision.outcome == "false_reject":
                out.good.append(image)
            else:
                out.defects.append((image, (decision.defect_type or DefectKind.OTHER).value))
    if out.skipped_other_product:
        logger.info("%s: %d decisions are for other products than %s; skipped", path, out.skipped_other_product,
                    product)
    logger.info("%s: %d false rejects join the good images, %d confirmed defects are held back for evaluation",
                path, len(out.good), len(out.defects))
    return out
