"""Fixtures for the live scorer's tests: data, a trained fast model in a repository, and a harness
that runs real ``npusuite fraud run`` processes against the session's real Kafka broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from npusuite.fraud.service.config import Topics

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def stream_transactions() -> list[dict]:
    """~22k time-ordered transactions of 300 accounts over 30 days (the fraud generator, seed 7)."""
    from npusuite.fraud.generator import GeneratorConfig, generate

    transactions, _labels = generate(GeneratorConfig(accounts=300, days=30, seed=7), progress=False)
    return transactions


def npusuite(*args: str, cwd: Path | None = None) -> None:
    """Run an ``npusuite`` command the way a user does; fail the test with its output on error."""
    proc = subprocess.run([sys.executable, "-m", "npusuite.platform", *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, f"npusuite {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture(scope="session")
def fast_model_repo(tmp_path_factory) -> Path:
    """A repository with ``fraud-fast`` versions 1 (production) and 2 (not promoted), made by
    ``npusuite fraud generate`` and ``npusuite fraud train --no-llm`` (small data, few epochs);
    version 2 is the same training with another seed."""
    work = tmp_path_factory.mktemp("fraud-models")
    root = work / "models"
    npusuite("fraud", "generate", "--out", str(work / "data"), "--accounts", "400", "--days", "20", "--seed", "3",
             "--fraud-rate", "0.02")
    for seed in ("0", "1"):
        npusuite("fraud", "train", "--data", str(work / "data" / "transactions.jsonl"), "--labels",
                 str(work / "data" / "labels.jsonl"), "--out", str(work / f"model-{seed}"), "--model-root", str(root),
                 "--no-llm", "--epochs", "3", "--seed", seed)
    return root


@pytest.fixture(scope="session")
def llm_model_repo(tmp_path_factory) -> Path:
    """A repository with ``fraud-fast@1`` and the LLM verdict model it names, ``fraud-llm@1``
    (a tiny local Qwen2, briefly fine-tuned by ``npusuite fraud train``)."""
    work = tmp_path_factory.mktemp("fraud-llm-models")
    root = work / "models"
    npusuite("fraud", "generate", "--out", str(work / "data"), "--accounts", "200", "--days", "14", "--seed", "4",
             "--fraud-rate", "0.03")
    npusuite("fraud", "train", "--data", str(work / "data" / "transactions.jsonl"), "--labels",
             str(work / "data" / "labels.jsonl"), "--out", str(work / "model"), "--model-root", str(root),
             "--epochs", "3", "--llm-steps", "10")
    return root


@dataclass
class Scorer:
    proc: subprocess.Popen
    log: Path
    instance: str

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)


@dataclass
class StreamHarness:
    bootstrap: str
    workdir: Path
    model_root: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    scorers: list[Scorer] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        s = self.suffix
        return Topics(transactions=f"tx-{s}", scores=f"scores-{s}", alerts=f"alerts-{s}", dlq=f"dlq-{s}")

    @property
    def group(self) -> str:
        return f"fraud-{self.suffix}"

    def create_topics(self, partitions: int = 4) -> None:
        """Create the input topic as the suite does (replication sized to the cluster)."""
        from npusuite.platform.kafka.topics import TopicSpec, bootstrap_create_missing

        bootstrap_create_missing(self.bootstrap, {self.topics.transactions: TopicSpec(partitions)})

    def start(self, instance: str, model: str = "fraud-fast", *extra: str,
              program: tuple[str, ...] = ("-m", "npusuite.fraud.service")) -> Scorer:
        """Start ``npusuite fraud run`` (``program``: another entry point taking the same arguments)."""
        t = self.topics
        log = self.workdir / f"scorer-{instance}-{len(self.scorers)}.log"
        cmd = [sys.executable, *program, "--bootstrap", self.bootstrap, "--group", self.group,
               "--model", model, "--model-root", str(self.model_root), "--instance-id", instance,
               "--transactions-topic", t.transactions, "--scores-topic", t.scores, "--alerts-topic", t.alerts,
               "--dlq-topic", t.dlq, *extra]
        env = {**os.environ, "NPUSUITE_LOG_LEVEL": "INFO"}
        proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        scorer = Scorer(proc, log, instance)
        self.scorers.append(scorer)
        return scorer

    def produce(self, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, batch_size=256 * 1024)
        try:
            for key, value in messages:
                producer.send(self.topics.transactions, key=key, value=value)
        finally:
            producer.flush()
            producer.close()

    def read_committed(self, topic: str, expect: int | None = None, timeout_s: float = 240.0,
                       quiet_s: float = 3.0) -> list:
        """Every committed record of ``topic``; waits until ``expect`` records (then ``quiet_s`` more for extras)."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level="read_committed",
                                 enable_auto_commit=False, group_id=None)
        parts = None
        deadline = time.monotonic() + timeout_s
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list = []
        quiet_until = None
        try:
            while time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    out.extend(batch)
                if expect is not None and len(out) >= expect:
                    quiet_until = quiet_until or time.monotonic() + quiet_s
                    if time.monotonic() >= quiet_until:
                        break
                if expect is None and all(consumer.position(tp) >= consumer.end_offsets([tp])[tp] for tp in tps):
                    break
        finally:
            consumer.close()
        return out

    def stop_all(self) -> None:
        for s in self.scorers:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(30)

    def logs(self) -> str:
        return "\n".join(f"--- {s.log.name}\n" + s.log.read_text()[-3000:] for s in self.scorers)


@pytest.fixture
def harness(kafka_bootstrap, fast_model_repo, tmp_path) -> StreamHarness:
    h = StreamHarness(kafka_bootstrap, tmp_path, fast_model_repo)
    yield h
    h.stop_all()
