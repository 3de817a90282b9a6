"""``npusuite fraud train-novelty``: the novelty model, trained on legitimate transactions only.

Replays the labelled stream through the streaming features (``fraud train``'s
:func:`~npusuite.fraud.training.load_dataset`), drops every transaction
labelled fraud (the model must know legitimate behaviour, not any typology),
trains :mod:`npusuite.fraud.novelty`'s isolation forest (the novelty score),
autoencoder (the reasons) and, with ``--sequence``, the sequence detector over
the account's previous transactions, and writes ``OUT`` (the
module, ``card.json``).  With ``--model-root`` it is added as a version of
``NAME-novelty`` (the first version becomes ``production``; ``--promote``
moves it for later ones), which ``fraud run --novelty-model NAME-novelty``
follows.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


def train_novelty(
    data: Path = typer.Option(..., "--data", help="Transactions JSONL (may carry is_fraud inline)."),
    labels: list[Path] = typer.Option([], "--labels", help="Labels JSONL; repeat it, later files win conflicts."),
    extra_labels: list[Path] = typer.Option([], "--extra-labels", help="Analysts' decisions, laid over --labels."),
    out: Path = typer.Option(..., "--out", help="Folder for the novelty model (module + card.json)."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Also add it to this repository."),
    name: str = typer.Option("fraud", "--name", help="Repository name: NAME-novelty."),
    promote: bool = typer.Option(False, "--promote", help="Point 'production' at the new version."),
    epochs: int = typer.Option(8, "--epochs", help="Autoencoder training epochs."),
    trees: int = typer.Option(100, "--trees", help=(
        "Isolation-forest trees; their score is the novelty. 0: no forest, the autoencoder's error is the novelty "
        "(the detector before; it caught less of the left-out typologies, docs/fraud-models.md).")),
    review_quantile: float = typer.Option(0.998, "--review-quantile", help=(
        "Novelty above this quantile of legitimate behaviour is at least reviewed (the card's combination).")),
    scale_quantile: float = typer.Option(0.9999, "--scale-quantile", help=(
        "Novelty at this quantile gets half the way from the review to the decline threshold.")),
    sequence: bool = typer.Option(False, "--sequence", help=(
        "Add the sequence detector: a GRU that reads the account's previous 8 transactions' features and "
        "predicts this one (legitimate rows only). The novelty is then the larger of the forest's and the "
        "sequence's legitimate tail evidence; in the leave-one-typology-out table it caught more of the "
        "typologies left out of training on four seeds (docs/fraud-models.md, \"A learned sequence model\"). "
        "It costs scoring time: the live scorer keeps about 0.82 of its throughput without a novelty tier, "
        "against 0.91 with the forest alone (bench/fraud_hot_path.py --novelty).")),
    sequence_epochs: int = typer.Option(4, "--sequence-epochs", help="Sequence detector training epochs."),
    sequence_hidden: int = typer.Option(32, "--sequence-hidden", help=(
        "Sequence detector GRU width. 64 caught as much in the leave-out table at about 3x the scoring cost.")),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the novelty tier on legitimate transactions only (an isolation forest and an autoencoder over the
    streaming features: the forest's score is the novelty, the autoencoder's errors name the unusual behaviour).

    Its card records the calibration (novelty quantiles on held-out legitimate data), each feature's
    legitimate range (for reasons) and the combination rule the scorer applies.

    Example: npusuite fraud train-novelty --data data/transactions.jsonl --labels data/labels.jsonl
    --out novelty --model-root models
    """
    from pydantic import ValidationError

    from npusuite.fraud.features import FEATURE_NAMES
    from npusuite.fraud.novelty import NoveltyTrainConfig, save_novelty_model
    from npusuite.fraud.novelty import train_novelty as run_training
    from npusuite.fraud.novelty_rule import NoveltyRule
    from npusuite.fraud.novelty_sequence import SequenceTrainConfig
    from npusuite.fraud.training import load_dataset
    from npusuite.platform.repository import ModelRepository

    if epochs < 1:
        raise UserError(f"--epochs must be positive (got {epochs})")
    if not 1 <= sequence_epochs <= 100:
        raise UserError(f"--sequence-epochs must be between 1 and 100 (got {sequence_epochs})")
    if not 4 <= sequence_hidden <= 512:
        raise UserError(f"--sequence-hidden must be between 4 and 512 (got {sequence_hidden})")
    if (sequence_epochs != 4 or sequence_hidden != 32) and not sequence:
        raise UserError("--sequence-epochs and --sequence-hidden need --sequence")
    if not 0 <= trees <= 1000:
        raise UserError(f"--trees must be between 0 and 1000 (got {trees})")
    try:
        rule = NoveltyRule(review_quantile=review_quantile, scale_quantile=scale_quantile)
    except ValidationError as exc:
        raise UserError(f"--review-quantile/--scale-quantile: {exc.errors()[0]['msg']}") from None
    ds = load_dataset(data, labels, analyst_files=extra_labels)
    try:
        config = NoveltyTrainConfig(epochs=epochs, seed=seed, trees=trees, sequence=SequenceTrainConfig(
            epochs=sequence_epochs, hidden=sequence_hidden, seed=seed) if sequence else None)
        module, info = run_training(ds.x, ds.y, config, rule, ds.transactions)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    repo = ModelRepository(model_root) if model_root is not None else None
    full = f"{name}-novelty"
    numbers = [int(v) for v in repo.versions(full) if v.isdigit()] if repo and full in repo.models() else []
    card = {"ref": f"{full}@{max(numbers, default=0) + 1}" if repo else f"{full}@local", "kind": "fraud-novelty",
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "data": {"sources": ds.sources, "transactions": len(ds.y), "legitimate_used": int((~ds.y).sum()),
                     "fraud_left_out": int(ds.y.sum())},
            "features": list(FEATURE_NAMES), **info}
    save_novelty_model(module, out, card)
    result = {"model_dir": str(out), "ref": card["ref"], "calibration": info["calibration"],
              "combination": info["combination"]}
    if repo is not None:
        version = repo.add(full, out)
        if promote:
            repo.promote(full, version.version)
        result["repository"] = {"version": version.ref, "production": repo.aliases(full).get("production")}
    typer.echo(json.dumps(result, indent=2))
