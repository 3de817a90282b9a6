"""``npusuite fraud run``: the live scorer as a command.

Importing this module is cheap (typer only); Kafka, torch and the models are
imported when the command runs.  SIGTERM and Ctrl-C stop it gracefully: the
batch in flight commits, the consumer leaves its group, the process exits 0.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer

logger = logging.getLogger(__name__)


def run(
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP, else 127.0.0.1:9092)."),
    group: str = typer.Option("npusuite-fraud", "--group", help=(
        "Consumer group.  Start N processes with the same group for active-active scoring; each partition's "
        "account state follows it to whichever process owns it.")),
    model: str = typer.Option(..., "--model", help=(
        "Fast model: NAME (= NAME@production), NAME@VERSION, NAME@ALIAS or a model folder.  With an alias "
        "the scorer hot-swaps when the alias moves (npusuite models promote ...).")),
    model_root: Path | None = typer.Option(None, "--model-root", help="Model repository holding --model."),
    llm_model: str | None = typer.Option(None, "--llm-model", help=(
        "Optional LLM verdict model for the grey band (same reference forms).  Without it, or when it is "
        "saturated or down, grey-band transactions keep the fast score with reason llm_unavailable.")),
    llm_deadline_ms: float = typer.Option(60.0, "--llm-deadline-ms", help="Longest wait for LLM verdicts per batch."),
    grey_low: float | None = typer.Option(None, "--grey-low", help=(
        "Lower bound of the grey band (fast probability) escalated to the LLM; default: the model card's.")),
    grey_high: float | None = typer.Option(None, "--grey-high", help="Upper bound (exclusive) of the grey band."),
    instance_id: str | None = typer.Option(None, "--instance-id", help=(
        "Stable name of this process slot (e.g. scorer-0).  A restarted instance with the same id fences "
        "its crashed predecessor at once; default: a random id.")),
    partitions: int = typer.Option(4, "--partitions", help="Partitions for 'transactions' if the scorer creates it."),
    max_poll_records: int = typer.Option(2000, "--max-poll-records", help="Largest batch per Kafka transaction."),
    max_batch_ms: float = typer.Option(40.0, "--max-batch-ms", help=(
        "Bound each batch by time too: take at most the records the scorer is expected to score in this many "
        "ms (its measured cost per record), so a burst commits in several transactions, the first ones early, "
        "instead of one long one (0: --max-poll-records only).")),
    gil_switch_interval_ms: float = typer.Option(1.0, "--gil-switch-interval-ms", help=(
        "Python's thread switch interval in the scorer (CPython's default: 5 ms).  The Kafka commit runs in a "
        "second thread that needs the interpreter for a moment after each broker round trip; a shorter interval "
        "lets it in sooner while a batch is being scored (0: leave the default).")),
    metrics_port: int = typer.Option(0, "--metrics-port", help=(
        "Serve Prometheus /metrics, /healthz and /readyz on this port (0: off).")),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help=(
        "Address /metrics, /healthz and /readyz listen on (default loopback; 0.0.0.0 for every interface).")),
    transactions_topic: str = typer.Option("transactions", "--transactions-topic"),
    scores_topic: str = typer.Option("fraud-scores", "--scores-topic"),
    alerts_topic: str = typer.Option("fraud-alerts", "--alerts-topic"),
    dlq_topic: str = typer.Option("transactions-dlq", "--dlq-topic"),
    shadow: str | None = typer.Option(None, "--shadow", metavar="ALIAS", help=(
        "Champion/challenger: also score every transaction with the fast model's ALIAS (e.g. challenger; or "
        "NAME@ALIAS|VERSION), following that alias, and write its scores to --shadow-topic in the same Kafka "
        "transaction.  It never changes decisions, alerts or state; same features, fast tier only, no LLM.  "
        "Compare the two with `npusuite fraud compare`.")),
    shadow_topic: str = typer.Option("fraud-scores-shadow", "--shadow-topic", help="Where the challenger's scores "
                                     "go (with --shadow)."),
    novelty_model: str | None = typer.Option(None, "--novelty-model", metavar="NAME[@ALIAS]", help=(
        "Novelty tier (`npusuite fraud train-novelty`), e.g. fraud-novelty: transactions far from legitimate "
        "behaviour are at least reviewed, with a reason saying what is unusual.  A model trained with "
        "--sequence also reads each account's previous 8 transactions, which its state keeps (about 7-8 us a "
        "transaction more than the forest alone).  Followed through its alias; a version that does not fit is "
        "refused before the switch.")),
    rules: str | None = typer.Option(None, "--rules", metavar="NAME[@ALIAS]", help=(
        "Analysts' rules (`npusuite fraud rules add`), e.g. fraud-rules: each rule that fires raises the "
        "decision to its action and is named in rules_fired.  Followed through its alias: a promoted rule set "
        "takes effect within milliseconds; a broken one is refused and the old rules keep scoring.")),
    features: str = typer.Option("kernel", "--features", help=(
        "Feature implementation: kernel (compiled with numba) or python (the reference); bit-identical.")),
    takeover_zone: str | None = typer.Option(None, "--takeover-zone", metavar="ZONE", help=(
        "Take over a lost zone's accounts: consume ZONE.<transactions-topic> (mirrored here by `npusuite kafka "
        "mirror`) with their state restored from, and kept in, ZONE.<group>-account-state; consumer group "
        "<group>-takeover-ZONE; scores go to this zone's --scores-topic.  See docs/kafka.md.")),
) -> None:
    """Score the transactions topic live: exactly one committed score per transaction.

    Reads `transactions` (keyed by account_id) in a consumer group, writes
    `fraud-scores`, `fraud-alerts` (review/decline) and `transactions-dlq`
    (bad messages, with the reason) in Kafka transactions together with the
    consumed offsets and the account-state changelog.  Read the outputs with
    isolation_level=read_committed.

    Example: npusuite fraud run --bootstrap 127.0.0.1:9092 --model fraud-fast --model-root models
    """
    from pydantic import ValidationError

    from npusuite.fraud.service.config import ModelConfig, ServiceConfig, Topics
    from npusuite.fraud.service.metrics import ServiceMetrics
    from npusuite.fraud.service.runner import FraudService
    from npusuite.fraud.service.scoring import build_live_scorer
    from npusuite.platform.errors import UserError
    from npusuite.platform.settings import KafkaSettings

    bootstrap = bootstrap or KafkaSettings().bootstrap or "127.0.0.1:9092"
    from npusuite.platform.kafka.probe import probe_bootstrap

    probe_bootstrap(bootstrap)  # fail in seconds, naming the address, before any client retries for minutes
    topics = Topics(transactions=transactions_topic, scores=scores_topic, alerts=alerts_topic, dlq=dlq_topic,
                    shadow_scores=shadow_topic)
    extra = {"instance_id": instance_id} if instance_id else {}
    try:
        config = ServiceConfig(bootstrap=bootstrap, group_id=group, topics=topics, partitions=partitions,
                               max_poll_records=max_poll_records, max_batch_ms=max_batch_ms,
                               gil_switch_interval_ms=gil_switch_interval_ms, metrics_port=metrics_port,
                               metrics_host=metrics_host, **extra)
        model_config = ModelConfig(model=model, model_root=model_root, llm_model=llm_model,
                                   llm_deadline_ms=llm_deadline_ms, grey_low=grey_low, grey_high=grey_high,
                                   shadow=shadow, novelty_model=novelty_model, rules=rules, features=features)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    if takeover_zone:
        from npusuite.fraud.service.takeover import seed_offsets, takeover_config

        config = takeover_config(config, takeover_zone)
        seed_offsets(config)  # before the consumer joins: where the mirrored state ends
    metrics = ServiceMetrics()
    if shadow:
        from npusuite.fraud.service.shadow import ensure_shadow_topic

        ensure_shadow_topic(config)
    scorer = build_live_scorer(model_config, metrics)
    service = FraudService(config, scorer, metrics)
    if metrics_port:
        metrics.serve(config.metrics_port, config.metrics_host, ready=service.readiness,
                      folders={"models": model_config.model_root} if model_config.model_root else None,
                      device=getattr(model_config, "device", "cpu"))

    def _graceful(signum, _frame):
        logger.info("signal %d: finishing the current batch, then stopping", signum)
        service.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    try:
        service.run()
    finally:
        close = getattr(scorer, "close", None)
        if close is not None:
            close()
