"""Typed configuration of the live fraud scorer (``npusuite fraud run``).

One object, validated when it is built, with units in field names.  The
command line builds it from flags; tests and the benchmark build it directly.
Nothing here reads the environment (``platform/settings.py`` does that).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Topics(BaseModel):
    """Topic names.  Every output topic is written inside the scorer's Kafka transactions."""

    model_config = ConfigDict(frozen=True)

    transactions: str = "transactions"
    scores: str = "fraud-scores"
    alerts: str = "fraud-alerts"
    dlq: str = "transactions-dlq"
    #: The challenger's scores (``fraud run --shadow``): one per scored transaction, in the same Kafka
    #: transaction as the champion's (see :mod:`.shadow`).
    shadow_scores: str = "fraud-scores-shadow"
    #: Compacted changelog of account state; defaults to ``<group>-account-state``.
    changelog: str | None = None


class ServiceConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    bootstrap: str
    group_id: str = "npusuite-fraud"
    #: Stable per process slot (e.g. ``scorer-0``): the transactional id is
    #: ``<group>-<instance>``, so a restarted instance fences its crashed
    #: predecessor at once instead of waiting for the transaction timeout.
    instance_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], pattern=r"^[A-Za-z0-9._-]+$")
    topics: Topics = Topics()
    #: Partitions to create for ``transactions`` when it does not exist yet.
    partitions: int = Field(default=4, ge=1)

    max_poll_records: int = Field(default=2000, ge=1)
    poll_timeout_ms: int = Field(default=100, ge=1)
    #: A crashed scorer's open transaction blocks its partitions until the
    #: broker aborts it after this long; keep it short.
    transaction_timeout_ms: int = Field(default=10_000, ge=1000)
    #: A commit (``send_offsets_to_transaction`` + ``commit_transaction``) that has not returned after this
    #: long is taken as stalled: its producer is abandoned, a new one settles the transaction, and the batches
    #: are scored again from the group's committed offsets (see :mod:`.committer`).  It must exceed
    #: ``transaction_timeout_ms``: a commit can be legitimately slow until the broker aborts the transaction.
    commit_stall_ms: int = Field(default=40_000, ge=1_000)
    session_timeout_ms: int = Field(default=6_000, ge=6_000)
    heartbeat_interval_ms: int = Field(default=1_500, ge=100)
    #: Up to this many previous transactions per account travel with alerts.
    recent_per_account: int = Field(default=20, ge=0, le=100)

    #: A batch this large means the scorer is behind: it is scored while the previous batch's Kafka
    #: transaction commits.  A smaller one waits for that commit first and takes what arrived meanwhile.
    overlap_min_records: int = Field(default=200, ge=1)
    #: Bound of a batch by time as well as by size: at most as many records as the scorer is expected to
    #: score in this long (its measured seconds per record, a moving average), so a burst or a stall
    #: becomes several transactions that commit in turn instead of one long one that holds every record
    #: back until its end.  0 = bound by ``max_poll_records`` only.
    max_batch_ms: float = Field(default=40.0, ge=0, le=60_000, allow_inf_nan=False)
    #: CPython's GIL switch interval while the service runs (``sys.setswitchinterval``; CPython's default is
    #: 5 ms).  The commit thread needs the GIL for a moment after each Kafka round trip; while the scoring
    #: thread runs Python it gets it only at the next switch, so every round trip could add up to one
    #: interval to the commit.  0 = leave the interpreter's setting.
    gil_switch_interval_ms: float = Field(default=1.0, ge=0, le=100, allow_inf_nan=False)
    #: A batch taking longer than this (begin to commit) is logged with its phases.
    slow_batch_ms: float = Field(default=100.0, gt=0)
    #: Serve Prometheus metrics on this port (0 = do not serve).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Address the metrics endpoint binds to (loopback by default).
    metrics_host: str = Field(default="127.0.0.1", min_length=1)

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> ServiceConfig:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        if self.commit_stall_ms <= self.transaction_timeout_ms:
            raise ValueError("commit_stall_ms must exceed transaction_timeout_ms")
        return self

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}-{self.instance_id}"

    @property
    def changelog_topic(self) -> str:
        return self.topics.changelog or f"{self.group_id}-account-state"


class ModelConfig(BaseModel):
    """Which models to score with; references resolve through the platform repository."""

    model_config = ConfigDict(frozen=True)

    #: ``name``, ``name@version``, ``name@alias`` or a model directory.
    model: str
    model_root: Path | None = None
    #: Optional LLM verdict model for the grey band (same reference forms).
    llm_model: str | None = None
    #: Escalated transactions wait at most this long for the LLM before the
    #: fast score stands with reason ``llm_unavailable``.
    llm_deadline_ms: float = Field(default=60.0, gt=0)
    #: Grey band [low, high) of the fast probability that goes to the LLM (None: the model card's).
    grey_low: float | None = Field(default=None, ge=0, le=1)
    grey_high: float | None = Field(default=None, ge=0, le=1)
    #: Challenger to shadow-score with: ``ALIAS`` (of the fast model's name, e.g. ``challenger``) or a full
    #: ``NAME@ALIAS|VERSION``; None = no shadow scoring (see :mod:`.shadow`).
    shadow: str | None = None
    #: Novelty tier (``fraud train-novelty``): ``NAME`` (= ``NAME@production``), ``NAME@ALIAS|VERSION`` or a
    #: folder, followed through its alias; None = no novelty tier (see :mod:`.novelty_adapter`).
    novelty_model: str | None = None
    #: Analysts' rules (``fraud rules add``): a rule-set ``NAME[@ALIAS|VERSION]`` in the repository, followed
    #: through its alias; None = no rules (see :mod:`.rules_adapter`).
    rules: str | None = None
    #: torch intra-op threads in the scorer process.
    torch_threads: int = Field(default=1, ge=1)
    #: Feature implementation: ``kernel`` (compiled, :mod:`npusuite.fraud.feature_kernel`) or ``python`` (the
    #: reference, :mod:`npusuite.fraud.features`); bit-identical features and snapshots.
    features: Literal["kernel", "python"] = "kernel"
