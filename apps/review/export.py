"""``npusuite review export-labels``: closed cases as training data.

Layout written under OUT (files are replaced atomically; running it again
rewrites the same names, so it is safe to repeat):

- ``fraud/labels.jsonl``: one label (docs/contracts.md) per decided fraud case,
  ``{"transaction_id", "is_fraud", "fraud_type"}`` (confirmed fraud ->
  ``is_fraud: true`` with the typology, if any; legitimate -> false, null).
- ``inspection/good/<case>-<id>.png``: images of false rejects (confirmed good);
- ``inspection/defective/<defect type>/<case>-<id>.png``: confirmed defects;
- ``inspection/decisions.jsonl``: one line per exported image with its path,
  outcome, defect type, score, threshold, boxes, line, product and model.

Only closed cases are exported; open, held and escalated ones are not labels yet.

Every label is a class training accepts: fraud types are
:class:`~npusuite.platform.contracts.labels.FraudTypology` values and defect
folders :class:`~npusuite.platform.contracts.labels.DefectKind` values (decisions
are checked against them, and migration 0004 mapped older cases).  A stored
type outside the vocabulary (an alert's own ``fraud_type`` that no analyst
replaced) is exported as ``other``, with a warning, never as itself.

``npusuite fraud train --extra-labels OUT/fraud/labels.jsonl`` and
``npusuite inspection train --feedback OUT/inspection/decisions.jsonl`` read
these files back.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from npusuite.platform.contracts.labels import DefectKind, FraudTypology
from npusuite.review.models import Case, CaseImage

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExportSummary:
    fraud_labels: int
    good_images: int
    defective_images: int


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("._") or "x"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _in_vocabulary(case: Case, vocabulary: type[FraudTypology] | type[DefectKind]) -> str | None:
    """The case's type if the vocabulary has it; ``other`` (logged) if not; None when it has none."""
    if case.typology is None or case.typology in vocabulary.__members__.values():
        return case.typology
    logger.warning("case %d: type %r is not in the vocabulary; exported as 'other'", case.id, case.typology)
    return "other"


def export_labels(db: Session, out: Path, progress: bool = True) -> ExportSummary:
    out = Path(out)
    fraud_lines = []
    for case in db.scalars(select(Case).where(Case.kind == "fraud", Case.status == "closed").order_by(Case.id)):
        is_fraud = case.outcome == "confirmed_fraud"
        fraud_lines.append(json.dumps({"transaction_id": case.external_id, "is_fraud": is_fraud,
                                       "fraud_type": _in_vocabulary(case, FraudTypology) if is_fraud else None}))
    _write_atomic(out / "fraud" / "labels.jsonl", "".join(line + "\n" for line in fraud_lines).encode())

    decided = list(db.scalars(select(Case).where(Case.kind == "inspection", Case.status == "closed")
                              .order_by(Case.id)))
    manifest, good, defective = [], 0, 0
    for case in tqdm(decided, desc="inspection images", unit="img", disable=not progress or not decided):
        image = db.get(CaseImage, (case.id, "image"))
        if image is None:
            logger.warning("case %d has no image; skipped", case.id)
            continue
        name = f"{case.id}-{_safe(case.external_id)}.png"
        defect_type = None
        if case.outcome == "false_reject":
            rel = Path("good") / name
            good += 1
        else:
            defect_type = _in_vocabulary(case, DefectKind) or "other"
            rel = Path("defective") / defect_type / name
            defective += 1
        _write_atomic(out / "inspection" / rel, image.png)
        p = case.payload
        manifest.append(json.dumps({
            "image": rel.as_posix(), "id": case.external_id, "outcome": case.outcome, "defect_type": defect_type,
            "score": p.get("score"), "threshold": p.get("threshold"), "boxes": p.get("boxes"),
            "line": p.get("line"), "product": p.get("product"), "model": case.model,
        }))
    _write_atomic(out / "inspection" / "decisions.jsonl", "".join(line + "\n" for line in manifest).encode())
    logger.info("exported %d fraud labels, %d good and %d defective images to %s",
                len(fraud_lines), good, defective, out)
    return ExportSummary(len(fraud_lines), good, defective)
