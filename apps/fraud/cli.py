"""``npusuite fraud``: generate data, train, score offline and evaluate fraud models.

Bad input (a missing file, a line that breaks the schema, an unknown model, a
value out of range) raises :class:`UserError`, which the root CLI prints as
one line and exits with status 2.  Heavy libraries are imported inside the
commands so ``npusuite --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help=(
    "Fraud models: a labelled data generator, a fast torch model plus an LLM verdict model, "
    "offline scoring with reason codes, and evaluation within alert budgets.\n\n"
    "A first run:\n\n"
    "  npusuite fraud generate --out data --accounts 1000 --days 30\n\n"
    "  npusuite fraud train --data data/transactions.jsonl --labels data/labels.jsonl --out model\n\n"
    "  npusuite fraud score --model model --input data/transactions.jsonl --out scores.jsonl\n\n"
    "  npusuite fraud evaluate --scores scores.jsonl --labels data/labels.jsonl --plot pr.png"
))


def _positive(name: str, value: float) -> None:
    if not 0 < value < float("inf"):  # NaN too
        raise UserError(f"--{name} must be a positive number (got {value})")


def _gbm_settings(learner: str, leaves: int | None, l2: float | None, learning_rate: float | None,
                  iterations: int | None):
    """The boosted trees' settings from ``fraud train``'s ``--gbm-*`` flags (unset: scikit-learn's defaults)."""
    from npusuite.fraud.boosted_model import GbmTrainConfig

    given = {"leaves": leaves, "l2": l2, "learning-rate": learning_rate, "iterations": iterations}
    if learner != "gbm" and any(v is not None for v in given.values()):
        flags = ", ".join(f"--gbm-{k}" for k, v in given.items() if v is not None)
        raise UserError(f"{flags}: boosted-tree settings need --learner gbm (the learner is {learner})")
    if leaves is not None and leaves < 2:
        raise UserError(f"--gbm-leaves must be at least 2 (got {leaves})")
    if l2 is not None and not 0.0 <= l2 < float("inf"):
        raise UserError(f"--gbm-l2 must be zero or more (got {l2})")
    for flag, value in (("gbm-learning-rate", learning_rate), ("gbm-iterations", iterations)):
        if value is not None:
            _positive(flag, value)
    defaults = GbmTrainConfig()
    return GbmTrainConfig(max_iter=iterations or defaults.max_iter,
                          learning_rate=learning_rate or defaults.learning_rate,
                          max_leaf_nodes=leaves or defaults.max_leaf_nodes,
                          l2_regularization=defaults.l2_regularization if l2 is None else l2)


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="Folder for transactions.jsonl and labels.jsonl."),
    accounts: int = typer.Option(1000, "--accounts", help="Number of accounts (personas)."),
    days: int = typer.Option(30, "--days", help="Days of activity, starting Monday 2026-03-02 UTC."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    fraud_rate: float = typer.Option(0.003, "--fraud-rate", help="Share of transactions that are fraudulent."),
) -> None:
    """Write a deterministic, labelled, time-ordered transaction stream.

    Accounts have personas (spend, hours, home city, merchants, devices, travel); genuine
    oddities (trips, large purchases, new phones) sit beside five fraud typologies: card
    testing, account takeover, cloned card (impossible travel), ATM cash-out, merchant bust-out.
    """
    from npusuite.fraud.generator import GeneratorConfig, write

    try:
        config = GeneratorConfig(accounts=accounts, days=days, seed=seed, fraud_rate=fraud_rate)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    summary = write(out, config)
    typer.echo(f"wrote {summary.transactions} transactions ({summary.frauds} fraudulent: {summary.by_type}) to {out}")


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Transactions JSONL (may carry is_fraud/fraud_type inline)."),
    labels: list[Path] = typer.Option([], "--labels", help="Labels JSONL; repeat it, later files win conflicts."),
    extra_labels: list[Path] = typer.Option([], "--extra-labels", help=(
        "Analysts' decisions (fraud/labels.jsonl from `npusuite review export-labels`); each overrides the "
        "label of its transaction. The model card records how many applied and which flipped.")),
    out: Path = typer.Option(..., "--out", help="MODEL_DIR to write (fast/, llm/, card.json)."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Also add both models to this repository."),
    name: str = typer.Option("fraud", "--name", help="Repository names: NAME-fast and NAME-llm."),
    promote: bool = typer.Option(False, "--promote", help="Point 'production' at the new versions."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Train the fast model only."),
    categorical_risk: bool = typer.Option(False, "--categorical-risk/--no-categorical-risk", help=(
        "Learn merchant category, country, channel, merchant and device risk from the labels (time-safe target "
        "encoding, a table in the model); off: the key features are held at 0. The card's categorical_risk.enabled "
        "records which (docs/fraud-models.md: why it is off by default).")),
    learner: str = typer.Option("mlp", "--learner", help=(
        "The fast model: mlp (a small network) or gbm (gradient-boosted trees, which caught more of the fraud "
        "kinds left out of training: docs/fraud-models.md, 'Boosted fast model'). The card's learner records it.")),
    gbm_leaves: int | None = typer.Option(None, "--gbm-leaves", help=(
        "With --learner gbm: leaves per tree (default 31). 8, with --gbm-l2 1, traded a little recall on unseen "
        "fraud kinds for AP on known ones: docs/fraud-models.md, 'Regularised trees'.")),
    gbm_l2: float | None = typer.Option(None, "--gbm-l2", help="With --learner gbm: L2 regularisation (default 0)."),
    gbm_learning_rate: float | None = typer.Option(None, "--gbm-learning-rate", help=(
        "With --learner gbm: the boosting learning rate (default 0.1).")),
    gbm_iterations: int | None = typer.Option(None, "--gbm-iterations", help=(
        "With --learner gbm: boosting iterations, at most (default 100; early stopping may use fewer).")),
    llm_base: Path | None = typer.Option(None, "--llm-base", help=(
        "Fine-tune this local Hugging Face folder (e.g. DeepSeek-R1-Distill-Qwen-1.5B) instead of "
        "building a tiny Qwen2 with a locally trained tokenizer. Use with --llm-lora and --device cuda|npu.")),
    llm_lora: bool = typer.Option(False, "--llm-lora", help="Train LoRA adapters (peft) and merge them."),
    llm_arch: str = typer.Option("qwen2", "--llm-arch", help="Locally built LLM: qwen2 or deepseek_v3."),
    llm_steps: int = typer.Option(200, "--llm-steps", help="LLM fine-tuning steps."),
    device: str = typer.Option("cpu", "--device", help="Where the LLM trains: cpu, cuda[:N], npu[:N]."),
    epochs: int = typer.Option(12, "--epochs", help="Fast-model epochs."),
    alert_budget: float = typer.Option(0.01, "--alert-budget", help="Share of transactions analysts can review."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Replay the labelled stream through the streaming features and train both models.

    The fast model (torch MLP, class-weighted, Platt-calibrated) and the LLM verdict model
    (a causal LM answering ' fraud' / ' legit', served int8) are saved with model cards.
    """
    from npusuite.fraud.fast_model import FastTrainConfig
    from npusuite.fraud.llm_verdict import LlmTrainConfig
    from npusuite.fraud.training import LEARNERS, TrainConfig, load_dataset
    from npusuite.fraud.training import train as run_training

    for flag, value in (("epochs", epochs), ("llm-steps", llm_steps), ("alert-budget", alert_budget)):
        _positive(flag, value)
    if alert_budget >= 0.5:
        raise UserError("--alert-budget is a share of transactions, e.g. 0.01")
    if llm_arch not in ("qwen2", "deepseek_v3"):
        raise UserError(f"--llm-arch {llm_arch!r}: choose qwen2 or deepseek_v3")
    if learner not in LEARNERS:
        raise UserError(f"--learner {learner!r}: choose one of {', '.join(LEARNERS)}")
    gbm = _gbm_settings(learner, gbm_leaves, gbm_l2, gbm_learning_rate, gbm_iterations)
    if llm_base is not None and not (llm_base / "config.json").is_file():
        raise UserError(f"--llm-base {llm_base}: not a Hugging Face model folder (no config.json)")
    config = TrainConfig(
        fast=FastTrainConfig(epochs=epochs, seed=seed),
        llm=LlmTrainConfig(arch=llm_arch, steps=llm_steps, lora=llm_lora, device=device, seed=seed),
        with_llm=not no_llm, llm_base=llm_base, alert_budget=alert_budget, name=name,
        categorical_risk=categorical_risk, learner=learner, gbm=gbm)
    if device != "cpu":
        from npusuite.platform.runtime.devices import get_device

        get_device(device)  # fail fast, before the replay
    ds = load_dataset(data, labels, analyst_files=extra_labels)
    card = run_training(ds, out, config, model_root=model_root, promote=promote)
    typer.echo(json.dumps({"model_dir": str(out), "fast": card["ref"], "llm": card["llm"],
                           "analyst_labels": card["data"]["analyst_labels"],
                           "repository": card.get("repository"), "thresholds": card["thresholds"],
                           "calibration_slice": card["metrics_calibration_slice"]}, indent=2))


@app.command()
def score(
    model: str = typer.Option(..., "--model", help="MODEL_DIR, a fast-model folder, or NAME[@VERSION|@ALIAS]."),
    input: Path = typer.Option(..., "--input", help="Transactions JSONL to score."),
    out: Path = typer.Option(..., "--out", help="Scores JSONL to write (fraud-scores records)."),
    warmup: Path | None = typer.Option(None, "--warmup", help="Earlier transactions: build state, don't score."),
    model_root: Path | None = typer.Option(None, "--model-root", help="Repository for NAME@VERSION references."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Fast model only (grey band falls back)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Transactions per scorer batch."),
    grey_low: float | None = typer.Option(None, "--grey-low", help="Grey band start (fast probability); "
                                          "default from the model card."),
    grey_high: float | None = typer.Option(None, "--grey-high", help="Grey band end; default from the card."),
) -> None:
    """Replay a file in timestamp order through the same scorer as the live service.

    Fast-model probabilities in the grey band [--grey-low, --grey-high) go to the LLM verdict
    model, which decides review vs approve; every score carries reason codes in words.
    """
    from npusuite.fraud.bundle import load_scorer
    from npusuite.fraud.datasets import read_transactions
    from npusuite.fraud.replay import score_file

    _positive("batch-size", batch_size)
    txs, _ = read_transactions(input)
    warm = read_transactions(warmup)[0] if warmup is not None else None
    if not Path(model).exists() and model_root is None:
        raise UserError(f"--model {model}: no such folder (for NAME@VERSION pass --model-root)")
    for flag, value in (("grey-low", grey_low), ("grey-high", grey_high)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise UserError(f"--{flag} is a probability in [0, 1] (got {value})")
    scorer = load_scorer(model, model_root, with_llm=not no_llm, grey_low=grey_low, grey_high=grey_high)
    summary = score_file(scorer, txs, out, warmup=warm, batch_size=batch_size)
    typer.echo(f"scored {summary.scored} transactions -> {out}: {summary.decisions} "
               f"({summary.escalated} to the LLM, {summary.llm_fallbacks} fell back)")


@app.command()
def evaluate(
    scores: Path | None = typer.Option(None, "--scores", help="Scores JSONL from `fraud score` (not with "
                                       "--leave-out)."),
    labels: list[Path] = typer.Option(..., "--labels", help="Labels JSONL; repeat it, later files win conflicts."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG here: the precision-recall curve, or with "
                                     "--leave-out the left-out typologies' recall."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
    leave_out: str | None = typer.Option(None, "--leave-out", metavar="TYPOLOGY|all", help=(
        "Measure novelty: train without this typology's fraud (removed from the training period), test on the "
        "later period that contains it, and report its recall at the alert budget beside the overall AP. "
        "'all' leaves each typology out in turn and adds 'none' (nothing left out) as the reference.")),
    data: Path | None = typer.Option(None, "--data", help="With --leave-out: the labelled transactions JSONL."),
    train_days: float | None = typer.Option(None, "--train-days", help="With --leave-out: days from the first "
                                            "transaction that train (default: the first two thirds)."),
    alert_budget: float = typer.Option(0.01, "--alert-budget", help="With --leave-out: share of test "
                                       "transactions alerted."),
    epochs: int = typer.Option(12, "--epochs", help="With --leave-out: fast-model epochs per trained model."),
    seed: int = typer.Option(0, "--seed", help="With --leave-out: training seed."),
    with_novelty: bool = typer.Option(False, "--with-novelty", help=(
        "With --leave-out: also the fast model with the novelty tier (trained per fold on the training part's "
        "legitimate rows, combined by the tiered scorer's rule), as a second column.")),
) -> None:
    """Report AP, ROC-AUC, recall/precision at 0.5% and 1% budgets, card precision, recall by type.

    Daily card precision@100 needs card_id and timestamp on the score lines (`fraud score` writes
    them). With --plot, also a precision-recall curve PNG.

    With --leave-out (and --data instead of --scores) it runs the leave-one-typology-out protocol:
    e.g. `npusuite fraud evaluate --leave-out all --data data/transactions.jsonl --labels
    data/labels.jsonl --json loo.json --plot loo.png` trains one fast model per typology (a few
    minutes each on a large stream).
    """
    from npusuite.fraud.datasets import merge_labels, read_labels, read_scores
    from npusuite.fraud.evaluation import evaluate as run_evaluation

    if leave_out is not None:
        merged = merge_labels([read_labels(p) for p in labels])
        report = _leave_out(leave_out, data, merged, train_days, alert_budget, epochs, seed, plot, scores,
                            with_novelty)
    else:
        if scores is None:
            raise UserError("--scores is required (or run the leave-one-typology-out protocol with --leave-out)")
        rows = read_scores(scores)  # before the labels: a broken scores file is named first
        report = run_evaluation(rows, merge_labels([read_labels(p) for p in labels]), plot=plot)
    text = json.dumps(report, indent=2)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
    typer.echo(text)


def _leave_out(which: str, data: Path | None, labels: dict, train_days: float | None, budget: float, epochs: int,
               seed: int, plot: Path | None, scores: Path | None, with_novelty: bool = False) -> dict:
    from datetime import timedelta

    from npusuite.fraud import leave_out as lo
    from npusuite.fraud.datasets import read_transactions
    from npusuite.fraud.fast_model import FastTrainConfig
    from npusuite.platform.contracts.labels import GENERATED_TYPOLOGIES, parse_typology

    if scores is not None or data is None:
        raise UserError("--leave-out trains its own models: give --data (the labelled transactions), not --scores")
    _positive("epochs", epochs)
    if not 0 < budget < 0.5:
        raise UserError(f"--alert-budget is a share of transactions, e.g. 0.01 (got {budget})")
    if which == "all":
        typologies = [lo.NONE, *(t.value for t in GENERATED_TYPOLOGIES)]
    else:
        try:
            typologies = [parse_typology(which).value]
        except ValueError as exc:
            raise UserError(f"--leave-out: {exc}, or all") from None
    txs, inline = read_transactions(data)
    labels = {**inline, **labels}
    if not txs:
        raise UserError(f"--data {data} holds no transactions")
    first, last = txs[0].timestamp, txs[-1].timestamp
    until = first + (timedelta(days=train_days) if train_days is not None else (last - first) * 2 / 3)
    if not first < until <= last:
        raise UserError(f"--train-days {train_days}: the split must fall inside the data ({first:%Y-%m-%d} to "
                        f"{last:%Y-%m-%d})")
    from npusuite.fraud.training import TrainConfig

    risk = TrainConfig().categorical_risk  # the fast model as `fraud train` trains it by default
    methods = [lo.FastMethod("fast model" + (" (learned categorical risk)" if risk else ""), with_risk=risk,
                             fast=FastTrainConfig(epochs=epochs, seed=seed))]
    if with_novelty:
        from npusuite.fraud.leave_out_tiers import Tiers
        from npusuite.fraud.novelty import NoveltyTrainConfig

        methods.append(Tiers(FastTrainConfig(epochs=epochs, seed=seed), NoveltyTrainConfig(seed=seed)).method(
            "fast model + novelty"))
    try:
        report = lo.leave_out(txs, labels, until, typologies, methods, budget).as_dict()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if plot is not None and len(typologies) > 1:
        lo.plot(report, plot)
        report["plot"] = str(plot)
    return report


@app.command()
def compare(
    bootstrap: str | None = typer.Option(None, "--bootstrap", metavar="HOST:PORT", help=(
        "Kafka to read the two score topics from (read_committed, to their end; default: KAFKA_BOOTSTRAP, else "
        "127.0.0.1:9092).  Not used with --scores/--shadow-scores files.")),
    scores_topic: str = typer.Option("fraud-scores", "--scores-topic", help="The champion's scores."),
    shadow_topic: str = typer.Option("fraud-scores-shadow", "--shadow-topic", help=(
        "The challenger's scores (`npusuite fraud run --shadow ALIAS`).")),
    scores_file: Path | None = typer.Option(None, "--scores", help="Read the champion's scores from this JSONL "
                                            "instead of Kafka (needs --shadow-scores)."),
    shadow_file: Path | None = typer.Option(None, "--shadow-scores", help="The challenger's scores as JSONL."),
    labels: list[Path] = typer.Option(..., "--labels", help="Labels JSONL; repeat it, later files win conflicts."),
    alert_budget: float = typer.Option(0.01, "--alert-budget", help="Share of transactions analysts can review: "
                                       "recall and precision are taken at the top ceil(budget * n) scores."),
    out: Path = typer.Option(..., "--out", help="Folder for compare.json and compare.png."),
    model_root: Path | None = typer.Option(None, "--model-root", help=(
        "Also attach the comparison to the challenger version in this repository, where `npusuite models "
        "promote --require-comparison` checks it.")),
    count: int | None = typer.Option(None, "--count", help="Wait for this many records in each topic (a scorer "
                                     "still running); default: what is committed now."),
    timeout_s: float = typer.Option(120.0, "--timeout-s", help="Longest wait for the topics."),
    champion: str | None = typer.Option(None, "--champion", metavar="NAME@VERSION", help=(
        "Compare only this champion version's scores (when the topic holds several).")),
    challenger: str | None = typer.Option(None, "--challenger", metavar="NAME@VERSION", help=(
        "Compare only this challenger version's scores.")),
    ap_tolerance: float = typer.Option(0.01, "--ap-tolerance", help="Passing rule: challenger AP >= champion AP "
                                       "minus this."),
    recall_tolerance: float = typer.Option(0.01, "--recall-tolerance", help="Passing rule: challenger recall at "
                                           "the budget >= champion's minus this."),
) -> None:
    """Champion vs challenger on labels: AP, recall at the alert budget, alert rate, latency, decision agreement.

    Joins the champion's and the challenger's scores by transaction_id with the labels and writes
    OUT/compare.json and OUT/compare.png (PR curves + agreement heatmap).  The comparison PASSES when
    the challenger's AP and recall at the budget are each at most the tolerance below the champion's.

    Example: npusuite fraud compare --bootstrap 127.0.0.1:9092 --labels data/labels.jsonl --out cmp
    --model-root models
    """
    from npusuite.fraud.compare import attach, parse_side, read_file, read_topic, write_report
    from npusuite.fraud.compare import compare as run_compare
    from npusuite.fraud.datasets import merge_labels, read_labels

    if (scores_file is None) != (shadow_file is None):
        raise UserError("--scores and --shadow-scores go together (or read both topics from Kafka)")
    if count is not None and count < 1:
        raise UserError(f"--count must be positive (got {count})")
    _positive("timeout-s", timeout_s)
    merged = merge_labels([read_labels(p) for p in labels])
    if scores_file is not None:
        raw_a, raw_b = read_file(scores_file), read_file(shadow_file)
    else:
        from npusuite.platform.settings import KafkaSettings

        server = bootstrap or KafkaSettings().bootstrap or "127.0.0.1:9092"
        raw_a = read_topic(server, scores_topic, count, timeout_s)
        raw_b = read_topic(server, shadow_topic, count, timeout_s)
    comparison, rows = run_compare(parse_side("champion", raw_a, champion), parse_side("challenger", raw_b, challenger),
                                   merged, alert_budget, ap_tolerance, recall_tolerance)
    json_path, png_path = write_report(comparison, rows, out)
    where = f"; attached to {comparison.challenger} in {model_root}" if model_root is not None else ""
    if model_root is not None:
        attach(comparison, model_root)
    typer.echo(json.dumps(comparison.model_dump(mode="json"), indent=2))
    typer.echo(f"{comparison.challenger} vs {comparison.champion}: {'PASSED' if comparison.passed else 'FAILED'} "
               f"({comparison.reason}); wrote {json_path} and {png_path}{where}", err=True)


# The novelty tier's training and the analysts' rules live in their own command modules (typer only at import).
from npusuite.fraud.novelty_command import train_novelty as _train_novelty  # noqa: E402
from npusuite.fraud.rules_command import app as _rules_app  # noqa: E402

app.command("train-novelty")(_train_novelty)
app.add_typer(_rules_app, name="rules")

# `fraud run`, the live Kafka scorer, belongs to npusuite.fraud.service; its command module imports only typer.
from npusuite.fraud.service.command import run as _run  # noqa: E402

app.command("run")(_run)
