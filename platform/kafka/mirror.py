"""Kafka's own MirrorMaker 2 between zones: the ``mm2.properties`` the suite runs it with, and the command line.

``npusuite kafka mirror --source A=HOST:PORT --target B=HOST:PORT [--both-ways]``
writes ``DATA/mm2.properties`` and replaces itself (``exec``) with
``java org.apache.kafka.connect.mirror.MirrorMaker mm2.properties`` in dedicated
mode, on the jars of ``resources/mirror-pom.xml`` (``connect-mirror``, the
broker's Kafka version).  SIGTERM stops MirrorMaker cleanly; nothing of ours
sits between it and the signal.

What :func:`mirror_properties` configures, and why (KIP-382; Kafka's
geo-replication docs):

* ``clusters``, ``<zone>.bootstrap.servers``; ``A->B.enabled`` (and ``B->A`` with
  ``--both-ways``: dual-active, each zone's topics mirrored to the other).
* ``replication.policy.class``: the default policy, which prefixes mirrored
  topics with their source zone (``transactions`` of A is ``A.transactions`` in
  B).  Both zones use the same topic names for their own traffic, so the prefix
  is what keeps A's records apart from B's, and what stops a record from being
  mirrored back to where it came from.  (IdentityReplicationPolicy would merge
  both zones' ``transactions`` into one topic and cannot run both ways.)
* ``<zone>.consumer.isolation.level=read_committed``: the scorer writes scores,
  alerts and its state changelog in Kafka transactions; MirrorMaker must copy
  only committed records, never an aborted batch.
* ``emit.checkpoints.enabled``/``sync.group.offsets.enabled`` with short
  intervals: consumer groups of one zone (e.g. a review-app consumer of
  ``fraud-scores``) find their translated offsets in the other zone.  The
  scorer's takeover does not rely on them (it derives its start from the
  mirrored changelog; see docs/kafka.md).
* Mirroring is at-least-once (``exactly.once.source.support`` is not enabled;
  it needs the target's Connect worker set up for transactions): a MirrorMaker
  restart may copy a record twice.  Readers de-duplicate by transaction_id,
  which the scorer does for inputs itself (a repeated transaction is
  dead-lettered as ``duplicate``) and docs/kafka.md describes for scores.
* Replication factors of mirrored and internal topics: the smallest of the
  clusters' :func:`~.topics.replication_for`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from npusuite.platform.errors import UserError
from npusuite.platform.kafka import jars

logger = logging.getLogger(__name__)

MAIN_CLASS = "org.apache.kafka.connect.mirror.MirrorMaker"
#: What the scorer and its readers need in the other zone: inputs, outputs and the account-state changelogs.
DEFAULT_TOPICS = r"transactions|fraud-scores|fraud-alerts|transactions-dlq|.*-account-state"


@dataclass(frozen=True)
class MirrorPlan:
    """Which clusters, which flows, which topics."""

    clusters: dict[str, str]
    flows: list[tuple[str, str]]
    topics: str = DEFAULT_TOPICS
    replication: int = 1
    interval_s: int = 2
    extra: dict[str, str] = field(default_factory=dict)


def parse_zone(spec: str, flag: str) -> tuple[str, str]:
    """``NAME=HOST:PORT[,HOST:PORT]`` -> (name, bootstrap); UserError otherwise."""
    name, sep, bootstrap = spec.partition("=")
    if not sep or not name or not bootstrap or not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"{flag} wants NAME=HOST:PORT (a zone name of letters, digits, - or _), not {spec!r}")
    if "." in name:
        raise UserError(f"{flag}: a zone name cannot contain '.', the mirrored topics' separator ({name!r})")
    return name, bootstrap


def mirror_properties(plan: MirrorPlan) -> str:
    names = list(plan.clusters)
    rf, s = plan.replication, plan.interval_s
    lines = [f"clusters = {', '.join(names)}"]
    for name, bootstrap in plan.clusters.items():
        lines += [f"{name}.bootstrap.servers = {bootstrap}", f"{name}.consumer.isolation.level = read_committed"]
    for a in names:
        for b in names:
            if a != b:
                lines.append(f"{a}->{b}.enabled = {'true' if (a, b) in plan.flows else 'false'}")
    lines += [
        f"topics = {plan.topics}",
        "replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
        "sync.topic.configs.enabled = true",
        "sync.topic.acls.enabled = false",
        f"refresh.topics.interval.seconds = {s}",
        f"refresh.groups.interval.seconds = {s}",
        "emit.heartbeats.enabled = true",
        "emit.heartbeats.interval.seconds = 1",
        "emit.checkpoints.enabled = true",
        f"emit.checkpoints.interval.seconds = {s}",
        "sync.group.offsets.enabled = true",
        f"sync.group.offsets.interval.seconds = {s}",
        # An offset sync every few records keeps translated group offsets close to the source's.
        "offset.lag.max = 10",
        f"replication.factor = {rf}",
        f"checkpoints.topic.replication.factor = {rf}",
        f"heartbeats.topic.replication.factor = {rf}",
        f"offset-syncs.topic.replication.factor = {rf}",
        f"offset.storage.replication.factor = {rf}",
        f"status.storage.replication.factor = {rf}",
        f"config.storage.replication.factor = {rf}",
        "tasks.max = 2",
    ]
    lines += [f"{k} = {v}" for k, v in plan.extra.items()]
    return "\n".join(lines) + "\n"


def mirror_command(data_dir: Path, cache_dir: Path, plan: MirrorPlan, heap_mb: int = 384) -> list[str]:
    """Write ``DATA/mm2.properties`` and return the java command line that runs MirrorMaker 2 on it."""
    java = jars.require_tool("java", "to run MirrorMaker 2")
    libs = jars.resolve_mirror(cache_dir)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    props = data_dir / "mm2.properties"
    props.write_text(mirror_properties(plan))
    return [java, f"-Xmx{heap_mb}m", f"-Xms{min(heap_mb, 128)}m", "-XX:+UseG1GC", f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j2.configurationFile={jars.resource('log4j2.yaml')}", "-cp", f"{libs}/*", MAIN_CLASS, str(props)]


def exec_mirror(cmd: list[str]) -> None:
    """Become MirrorMaker (never returns): signals reach the JVM directly, and no wrapper can be orphaned."""
    logger.info("running MirrorMaker 2: %s", " ".join(cmd[-2:]))
    os.execv(cmd[0], cmd)


__all__ = ["DEFAULT_TOPICS", "MAIN_CLASS", "MirrorPlan", "exec_mirror", "mirror_command", "mirror_properties",
           "parse_zone"]
