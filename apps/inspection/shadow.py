"""Shadow inspection (champion / challenger) on the live line: ``npusuite inspection run --shadow ALIAS``.

A second platform engine serves the challenger (``NAME@ALIAS`` of the
champion's model, e.g. ``washer@challenger``) with the same
:class:`~npusuite.inspection.adapter.InspectionAdapter` and follows that
alias, so a new challenger hot-swaps by the same build-and-warm-before-switch
rule.  Rules:

* each batch is inspected by the challenger AFTER the champion's verdicts
  have been signalled, archived, posted and written, so the challenger never
  delays a verdict and never changes a verdict, a reject, an archive record
  or a result (its inspections are compared, then dropped);
* agreement is counted per frame: the OK/NG confusion (``both_ok``,
  ``both_ng``, ``champion_only_ng``, ``challenger_only_ng``) and the mean
  ``|score/threshold|`` difference between the two (each score relative to
  its own version's threshold, so versions with other thresholds compare);
* best-effort: a batch the challenger fails on is logged and counted in
  ``errors``; the line goes on.  The challenger costs its forward pass on the
  line's thread (about as much again as the champion's: budget for it, or run
  it on a line with headroom).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class ShadowAgreement:
    """Champion vs challenger verdicts so far."""

    frames: int = 0
    both_ok: int = 0
    both_ng: int = 0
    champion_only_ng: int = 0
    challenger_only_ng: int = 0
    #: frames the challenger failed on (no comparison for them)
    errors: int = 0
    sum_abs_relative_score_diff: float = 0.0
    champions: Counter = field(default_factory=Counter)
    challengers: Counter = field(default_factory=Counter)

    def add(self, champion, challenger) -> None:
        """Count one frame's two inspections (objects with score, threshold, defective, model)."""
        self.frames += 1
        a, b = bool(champion.defective), bool(challenger.defective)
        if a and b:
            self.both_ng += 1
        elif a:
            self.champion_only_ng += 1
        elif b:
            self.challenger_only_ng += 1
        else:
            self.both_ok += 1
        self.sum_abs_relative_score_diff += abs(_relative(champion) - _relative(challenger))
        self.champions[champion.model] += 1
        self.challengers[challenger.model] += 1

    def summary(self) -> dict:
        n = self.frames
        return {"frames": n, "agreement": round((self.both_ok + self.both_ng) / n, 4) if n else None,
                "confusion": {"both_ok": self.both_ok, "both_ng": self.both_ng,
                              "champion_only_ng": self.champion_only_ng,
                              "challenger_only_ng": self.challenger_only_ng},
                "mean_abs_relative_score_diff": round(self.sum_abs_relative_score_diff / n, 6) if n else None,
                "errors": self.errors, "champions": dict(self.champions), "challengers": dict(self.challengers)}


def _relative(inspection) -> float:
    # a threshold of 0 (never calibrated so) would divide by zero: compare the raw score then
    return inspection.score / inspection.threshold if inspection.threshold else inspection.score


class ShadowInspector:
    """The challenger's engine and the agreement it has shown so far."""

    def __init__(self, inspectors) -> None:
        #: an :class:`~npusuite.inspection.line.EngineInspectors` (a lease yields the challenger's Inspector)
        self.inspectors = inspectors
        self.agreement = ShadowAgreement()

    @classmethod
    def open(cls, shadow: str, champion_engine, root: Path | None, device: str = "cpu", precision: str = "fp32",
             min_box_area_px: int = 1) -> ShadowInspector:
        """``shadow``: ALIAS of the champion's model name, or a full ``NAME@TAG``.  Raises UserError (no
        repository, unknown alias, a version the adapter refuses)."""
        from npusuite.inspection.line import EngineInspectors
        from npusuite.platform.errors import UserError

        if root is None:
            raise UserError("--shadow needs --model-root (the challenger is an alias in the model repository)")
        ref = shadow if "@" in shadow else f"{champion_engine.name}@{shadow}"
        inspectors = EngineInspectors.open(ref, root, device=device, precision=precision,
                                           min_box_area_px=min_box_area_px)
        logger.info("shadow inspection with challenger %s (%s)", ref, inspectors.ref)
        return cls(inspectors)

    def compare(self, frames, champion_results) -> None:
        """Inspect ``frames`` with the challenger and count agreement with ``champion_results`` (same order).
        Never raises."""
        if not champion_results:
            return
        try:
            with self.inspectors.lease() as inspector:
                results = inspector.inspect_batch(frames)
        except Exception as exc:  # best-effort: the champion's verdicts already stand
            self.agreement.errors += len(frames)
            logger.warning("challenger failed on frames %s: %s: %s", [f.seq for f in frames], type(exc).__name__,
                           exc)
            return
        for a, b in zip(champion_results, results, strict=True):
            self.agreement.add(a, b)

    def write_report(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.agreement.summary(), indent=2) + "\n")

    def close(self) -> None:
        self.inspectors.close()
