"""Reading transaction, label and score files (JSONL), with errors that name the line.

Rules:
- A line that breaks its schema stops the read with one :class:`SchemaError`
  of the form ``FILE line N: field 'amount': ...``, so a CLI prints exactly one
  line that says where and what.  Blank lines are skipped.
- A transaction file may carry ``is_fraud`` / ``fraud_type`` inline; those
  lines then count as labels (the Label record).
- Several label sources merge in order, the later winning on a conflicting
  ``transaction_id`` (:func:`merge_labels`): re-reviewed cases overrule older
  labels.
- A label's ``fraud_type`` is null or a
  :class:`~npusuite.platform.contracts.labels.FraudTypology` value (the
  generator's five typologies, or ``other``); any other type is refused with
  the line, so no label trains a class the models and the review app do not
  share.
- :func:`overlay_labels` lays analysts' decisions (``review export-labels``)
  over the other labels and reports what they changed: how many applied,
  which transactions flipped (genuine -> fraud, fraud -> genuine) or changed
  typology, and how many name no transaction of the data set (ignored).
- Every line goes through the platform's ``load_json`` (size, depth and
  NaN/Infinity refused before parsing), so a hostile line is a one-line error.
- Transactions are returned sorted by timestamp (a stable sort, so equal
  timestamps keep file order), the order every replay uses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from npusuite.fraud.schema import MAX_TRANSACTION_BYTES, Label, Transaction, parse_label, parse_transaction
from npusuite.platform.contracts.labels import parse_typology
from npusuite.platform.errors import NotFoundError, SchemaError
from npusuite.platform.records import load_json

logger = logging.getLogger(__name__)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, line
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{path}: not UTF-8 text ({exc.reason})") from None


def read_transactions(path: Path) -> tuple[list[Transaction], dict[str, Label]]:
    """Transactions sorted by time, plus any inline labels.

    Raises NotFoundError (no file), SchemaError (``FILE line N: field ...``; an empty file;
    a duplicate transaction_id).
    """
    txs: list[Transaction] = []
    inline: dict[str, Label] = {}
    seen: set[str] = set()
    for number, line in _lines(path):
        try:
            data = load_json(line, max_bytes=MAX_TRANSACTION_BYTES)  # SchemaError, never a RecursionError
            tx = parse_transaction(data)
            if tx.transaction_id in seen:
                raise SchemaError(f"field 'transaction_id': duplicate {tx.transaction_id!r}")
            seen.add(tx.transaction_id)
            if isinstance(data, dict) and "is_fraud" in data:
                inline[tx.transaction_id] = _known_type(parse_label(data))
        except SchemaError as exc:
            raise SchemaError(f"{path} line {number}: {exc}") from None
        txs.append(tx)
    if not txs:
        raise SchemaError(f"{path}: no transactions in file")
    txs.sort(key=lambda tx: tx.timestamp)
    return txs, inline


def _known_type(label: Label) -> Label:
    """LABEL, or SchemaError when its fraud_type is outside the vocabulary."""
    if label.fraud_type is not None:
        try:
            parse_typology(label.fraud_type)
        except ValueError as exc:
            raise SchemaError(f"field 'fraud_type': {exc}") from None
    return label


def read_labels(path: Path) -> dict[str, Label]:
    """Raises NotFoundError, SchemaError (``FILE line N: field ...``)."""
    labels: dict[str, Label] = {}
    for number, line in _lines(path):
        try:
            label = _known_type(parse_label(line))
        except SchemaError as exc:
            raise SchemaError(f"{path} line {number}: {exc}") from None
        labels[label.transaction_id] = label
    return labels


def merge_labels(sources: list[dict[str, Label]]) -> dict[str, Label]:
    """Later sources win on conflicts."""
    merged: dict[str, Label] = {}
    for i, source in enumerate(sources):
        overruled = sum(1 for k, v in source.items() if k in merged and merged[k].is_fraud != v.is_fraud)
        if overruled:
            logger.info("label source %d overrules %d earlier labels", i + 1, overruled)
        merged.update(source)
    return merged


class LabelOverlay(BaseModel):
    """What a set of analyst labels changed in a training set (recorded in the model card)."""

    files: list[str]
    labels: int
    applied: int
    unmatched: int
    to_fraud: list[str]
    to_genuine: list[str]
    retyped: list[str]


def overlay_labels(base: dict[str, Label], extra: dict[str, Label], transaction_ids: list[str],
                   files: list[str]) -> tuple[dict[str, Label], LabelOverlay]:
    """BASE with EXTRA laid over it (EXTRA wins), and what that changed for TRANSACTION_IDS.

    A transaction without a base label counts as genuine, as in training.  Labels in EXTRA for
    transactions outside TRANSACTION_IDS are counted as ``unmatched`` and change nothing.
    """
    known = set(transaction_ids)
    merged = dict(base)
    to_fraud, to_genuine, retyped, unmatched = [], [], [], 0
    for tx_id in sorted(extra):
        new = extra[tx_id]
        if tx_id not in known:
            unmatched += 1
            continue
        old = base.get(tx_id)
        was_fraud = old is not None and old.is_fraud
        if new.is_fraud and not was_fraud:
            to_fraud.append(tx_id)
        elif was_fraud and not new.is_fraud:
            to_genuine.append(tx_id)
        elif new.is_fraud and old is not None and old.fraud_type != new.fraud_type:
            retyped.append(tx_id)
        merged[tx_id] = new
    if unmatched:
        logger.warning("%d analyst labels name no transaction of the data set; ignored", unmatched)
    overlay = LabelOverlay(files=files, labels=len(extra), applied=len(extra) - unmatched, unmatched=unmatched,
                           to_fraud=to_fraud, to_genuine=to_genuine, retyped=retyped)
    logger.info("analyst labels: %d applied, %d flipped to fraud, %d to genuine, %d retyped", overlay.applied,
                len(to_fraud), len(to_genuine), len(retyped))
    return merged, overlay


def read_scores(path: Path) -> list[dict]:
    """Score lines (fraud-scores records) as dicts.  Raises NotFoundError, SchemaError."""
    from npusuite.fraud.schema import FraudScore

    out = []
    for number, line in _lines(path):
        try:
            data = load_json(line)
            FraudScore.model_validate(data)
        except ValueError as exc:  # pydantic.ValidationError
            err = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
            field = ".".join(str(p) for p in err["loc"]) or "record"
            raise SchemaError(f"{path} line {number}: field '{field}': {err['msg']}") from None
        out.append(data)
    if not out:
        raise SchemaError(f"{path}: no scores in file")
    return out
