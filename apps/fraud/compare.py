"""``npusuite fraud compare``: the champion's scores against the challenger's shadow scores, on labels.

Input: the champion's ``fraud-scores`` and the challenger's
``fraud-scores-shadow`` (written by ``fraud run --shadow``), read
``read_committed`` from Kafka to their end (or until ``count`` records each),
or the same records as JSONL files; and labels JSONL.

Rules:

* Every record is a :class:`~npusuite.platform.contracts.score.FraudScore`;
  one that is not (bad JSON, a broken field) is counted in
  ``invalid_records`` and left out, never fatal.  A transaction_id seen twice
  on one side keeps its last record (counted in ``duplicates``).
* Each side must hold ONE version (the fast model's ``name@version``; a
  champion's ``fast@v+llm@w`` counts as ``fast@v``); several (a hot swap
  during the run) is an error naming them, unless ``champion`` /
  ``challenger`` picks one, whose records alone are compared.
* Figures are computed on the transactions both sides scored and the labels
  know (the same rows for both versions): average precision, recall and
  precision at the alert budget (the top ``ceil(budget * n)`` scores), the
  alert rate of each side's own decisions (review + decline), and
  mean/p50/p99 of ``latency_ms`` (the champion's is its whole batch
  including features and any LLM call, the challenger's its forward pass).
  The agreement matrix counts decisions (rows champion, columns
  challenger; the champion's may be the LLM tier's, the challenger never
  calls it).
* **Passing rule** (:func:`passes`): challenger AP >= champion AP -
  ``ap_tolerance`` AND challenger recall at the budget >= champion recall -
  ``recall_tolerance`` (defaults 0.01 each).  The :class:`Comparison` names
  both versions; attached to the challenger version in the model repository
  it is what ``npusuite models promote --require-comparison`` checks (see
  :mod:`npusuite.platform.repository.comparison`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from npusuite.fraud.schema import Label
from npusuite.platform.contracts.score import FraudScore
from npusuite.platform.errors import UserError
from npusuite.platform.repository.comparison import ComparisonVerdict

logger = logging.getLogger(__name__)

DECISIONS = ("approve", "review", "decline")


class VersionFigures(BaseModel):
    """One version's figures on the compared transactions."""

    model_config = ConfigDict(frozen=True)

    model: str
    average_precision: float
    recall_at_budget: float
    precision_at_budget: float
    alert_rate: float = Field(description="Share of transactions this version decided review or decline.")
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p99: float


class Comparison(ComparisonVerdict):
    """``compare.json`` and the document attached to the challenger version."""

    alert_budget: float
    ap_tolerance: float
    recall_tolerance: float
    transactions: int = Field(description="Scored by both sides and labelled: the rows every figure is on.")
    fraud: int
    champion_figures: VersionFigures
    challenger_figures: VersionFigures
    #: agreement[champion decision][challenger decision] = transactions
    agreement: dict[str, dict[str, int]]
    agreement_rate: float
    unmatched: dict[str, int] = Field(description="champion_only / challenger_only / unlabelled transactions.")
    invalid_records: dict[str, int]
    duplicates: dict[str, int]


@dataclass(frozen=True)
class Side:
    """One side's records, keyed by transaction_id, with what was left out."""

    name: str
    scores: dict[str, FraudScore]
    invalid: int = 0
    duplicates: int = 0


def fast_ref(model: str) -> str:
    """The fast model's ``name@version`` of a score's ``model`` (``fast@3+llm@2`` -> ``fast@3``)."""
    return model.split("+", 1)[0]


def parse_side(name: str, values: list[bytes | str], pick: str | None = None) -> Side:
    """Parse a side's raw values (see the module rules on invalid records, duplicates and versions)."""
    scores: dict[str, FraudScore] = {}
    invalid = duplicates = 0
    first_error = None
    for raw in values:
        try:
            score = FraudScore.model_validate_json(raw)
        except ValidationError as exc:
            invalid += 1
            first_error = first_error or exc.errors()[0]["msg"]
            continue
        if pick is not None and fast_ref(score.model) != pick:
            continue
        duplicates += score.transaction_id in scores
        scores[score.transaction_id] = score
    if invalid:
        logger.warning("%s: %d records are not FraudScore records and are left out (first: %s)", name, invalid,
                       first_error)
    versions = Counter(fast_ref(s.model) for s in scores.values())
    if len(versions) > 1:
        listed = ", ".join(f"{v}: {n}" for v, n in versions.most_common())
        raise UserError(f"{name} holds scores of several versions ({listed}); pick one with "
                        f"--{'champion' if name == 'champion' else 'challenger'} NAME@VERSION")
    if not scores:
        raise UserError(f"{name}: no scores to compare" + (f" of {pick}" if pick else ""))
    return Side(name, scores, invalid, duplicates)


def passes(champion: VersionFigures, challenger: VersionFigures, ap_tolerance: float,
           recall_tolerance: float) -> tuple[bool, str]:
    """The passing rule (module rules) and its reason in words, with the figures."""
    ap_ok = challenger.average_precision >= champion.average_precision - ap_tolerance
    recall_ok = challenger.recall_at_budget >= champion.recall_at_budget - recall_tolerance
    reason = (f"AP {challenger.average_precision:.4f} vs {champion.average_precision:.4f} "
              f"({'ok' if ap_ok else 'too low'}), recall at budget {challenger.recall_at_budget:.4f} vs "
              f"{champion.recall_at_budget:.4f} ({'ok' if recall_ok else 'too low'})")
    return ap_ok and recall_ok, reason


def _figures(model: str, y: np.ndarray, scores: list[FraudScore], budget: float) -> VersionFigures:
    from sklearn.metrics import average_precision_score

    p = np.array([s.score for s in scores])
    k = max(1, math.ceil(budget * len(p)))
    top = y[np.argsort(-p, kind="stable")[:k]]
    lat = np.array([s.latency_ms for s in scores])
    return VersionFigures(model=model, average_precision=round(float(average_precision_score(y, p)), 4),
                          recall_at_budget=round(float(top.sum() / y.sum()), 4),
                          precision_at_budget=round(float(top.mean()), 4),
                          alert_rate=round(float(np.mean([s.decision != "approve" for s in scores])), 4),
                          latency_ms_mean=round(float(lat.mean()), 3),
                          latency_ms_p50=round(float(np.percentile(lat, 50)), 3),
                          latency_ms_p99=round(float(np.percentile(lat, 99)), 3))


def compare(champion: Side, challenger: Side, labels: dict[str, Label], alert_budget: float = 0.01,
            ap_tolerance: float = 0.01, recall_tolerance: float = 0.01) -> tuple[Comparison, np.ndarray]:
    """The comparison, and the label/score rows behind it (``[y, champion p, challenger p]``, for the plot).

    Raises UserError when nothing joins or the labels have one class only."""
    if not 0 < alert_budget < 0.5:
        raise UserError(f"--alert-budget is a share of transactions in (0, 0.5), e.g. 0.01 (got {alert_budget})")
    for flag, value in (("ap-tolerance", ap_tolerance), ("recall-tolerance", recall_tolerance)):
        if not 0 <= value <= 1:
            raise UserError(f"--{flag} must be in [0, 1] (got {value})")
    both = [t for t in champion.scores if t in challenger.scores]
    ids = [t for t in both if t in labels]
    if not ids:
        raise UserError(f"no transaction was scored by both versions and labelled ({len(champion.scores)} champion, "
                        f"{len(challenger.scores)} challenger scores, {len(both)} in both): are these the right "
                        f"topics and labels?")
    y = np.array([labels[t].is_fraud for t in ids])
    if y.all() or not y.any():
        raise UserError(f"the {len(ids)} compared transactions are all {'fraud' if y.all() else 'genuine'}: "
                        "AP and recall need both classes")
    a = [champion.scores[t] for t in ids]
    b = [challenger.scores[t] for t in ids]
    fa = _figures(fast_ref(a[0].model), y, a, alert_budget)
    fb = _figures(b[0].model, y, b, alert_budget)
    matrix = {d: dict.fromkeys(DECISIONS, 0) for d in DECISIONS}
    for sa, sb in zip(a, b, strict=True):
        matrix[sa.decision][sb.decision] += 1
    ok, reason = passes(fa, fb, ap_tolerance, recall_tolerance)
    comparison = Comparison(
        champion=fa.model, challenger=fb.model, passed=ok, reason=reason,
        rule=(f"challenger AP >= champion AP - {ap_tolerance} and challenger recall at the {alert_budget:.2%} alert "
              f"budget >= champion's - {recall_tolerance}, on transactions both scored and labels know"),
        created_at=datetime.now(UTC), alert_budget=alert_budget, ap_tolerance=ap_tolerance,
        recall_tolerance=recall_tolerance, transactions=len(ids), fraud=int(y.sum()), champion_figures=fa,
        challenger_figures=fb, agreement=matrix,
        agreement_rate=round(sum(matrix[d][d] for d in DECISIONS) / len(ids), 4),
        unmatched={"champion_only": len(champion.scores) - len(both),
                   "challenger_only": len(challenger.scores) - len(both), "unlabelled": len(both) - len(ids)},
        invalid_records={champion.name: champion.invalid, challenger.name: challenger.invalid},
        duplicates={champion.name: champion.duplicates, challenger.name: challenger.duplicates})
    rows = np.stack([y.astype(float), [s.score for s in a], [s.score for s in b]])
    return comparison, rows


def plot_comparison(comparison: Comparison, rows: np.ndarray, path: Path) -> None:
    """PR curves of both versions beside the agreement matrix as a heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    y = rows[0].astype(bool)
    fig, (ax, hm) = plt.subplots(1, 2, figsize=(11, 4.6))
    for label, p, figures, colour in (("champion", rows[1], comparison.champion_figures, "C0"),
                                      ("challenger", rows[2], comparison.challenger_figures, "C1")):
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, color=colour, label=f"{label} {figures.model} (AP {figures.average_precision:.3f}, "
                                               f"recall@budget {figures.recall_at_budget:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision-recall on {comparison.transactions} transactions ({comparison.fraud} fraud)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    m = np.array([[comparison.agreement[a][b] for b in DECISIONS] for a in DECISIONS])
    hm.imshow(np.log1p(m), cmap="Blues")
    for i in range(3):
        for j in range(3):
            hm.text(j, i, str(m[i, j]), ha="center", va="center", color="black" if m[i, j] < m.max() / 2 else "white")
    hm.set_xticks(range(3), DECISIONS)
    hm.set_yticks(range(3), DECISIONS)
    hm.set(xlabel=f"challenger {comparison.challenger}", ylabel=f"champion {comparison.champion}",
           title=f"Decisions (agreement {comparison.agreement_rate:.1%})")
    verdict = "PASSED" if comparison.passed else "FAILED"
    fig.suptitle(f"{comparison.challenger} vs {comparison.champion}: {verdict} ({comparison.reason})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_topic(bootstrap: str, topic: str, count: int | None = None, timeout_s: float = 60.0) -> list[bytes]:
    """Every committed value of ``topic`` (``read_committed``) up to its end, or until ``count`` values.

    Raises UserError when the topic does not exist, or ``count`` values do not arrive within ``timeout_s``."""
    import time
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"npusuite-compare-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "logger": logger})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise UserError(f"topic {topic!r} does not exist at {bootstrap}")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        values: list[bytes] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in consumer.consume(10_000, 0.2):
                err = m.error()
                if err is None:
                    values.append(m.value() or b"")
                    at_end.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
            if count is None and len(at_end) == len(meta.partitions):
                return values
            if count is not None and len(values) >= count and len(at_end) == len(meta.partitions):
                return values
        if count is not None:
            raise UserError(f"{topic}: {len(values)} of {count} records after {timeout_s:.0f} s")
        raise UserError(f"{topic}: not read to its end within {timeout_s:.0f} s ({len(values)} records so far)")
    finally:
        consumer.close()


def read_file(path: Path) -> list[str]:
    """One record per non-empty line of a JSONL file.  Raises UserError when it cannot be read."""
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def write_report(comparison: Comparison, rows: np.ndarray, out: Path) -> tuple[Path, Path]:
    """``out/compare.json`` and ``out/compare.png``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / "compare.json", out / "compare.png"
    json_path.write_text(json.dumps(comparison.model_dump(mode="json"), indent=2) + "\n")
    plot_comparison(comparison, rows, png_path)
    return json_path, png_path


def attach(comparison: Comparison, model_root: Path) -> Path:
    """Attach the comparison to the challenger version in the repository (what promote checks)."""
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.repository.comparison import COMPARISON

    name, _, version = comparison.challenger.partition("@")
    return ModelRepository(model_root).attach(name, version, COMPARISON, comparison.model_dump(mode="json"))
