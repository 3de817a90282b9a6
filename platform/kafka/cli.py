"""``npusuite kafka up|status|down|mirror``: a local Kafka 4.x broker or cluster, and MirrorMaker 2.

``up`` starts one broker, or with ``--brokers 3`` a 3-node KRaft cluster
(every node a broker and a controller) whose topics are created with 3
replicas and min.insync.replicas=2.  ``status`` and ``down`` find what the
``--data`` folder holds and cover every node.  ``mirror`` runs Kafka's own
MirrorMaker 2 between two clusters (zones); see docs/kafka.md.

To use an existing cluster instead, set ``KAFKA_BOOTSTRAP=host:port`` and skip
``up``; every component reads it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from npusuite.platform.errors import UserError
from npusuite.platform.kafka.broker import LocalBroker
from npusuite.platform.kafka.cluster import LocalCluster, is_cluster
from npusuite.platform.kafka.mirror import DEFAULT_TOPICS
from npusuite.platform.settings import PathSettings

app = typer.Typer(no_args_is_help=True, help=__doc__)

DataOpt = typer.Option(None, "--data", help="Broker data folder (default: ~/.local/share/npusuite/kafka).")


def _data(data: Path | None) -> Path:
    return data or PathSettings().data_dir() / "kafka"


def _broker(data: Path | None, port: int = 9092) -> LocalBroker:
    return LocalBroker(_data(data), port=port, cache_dir=PathSettings().cache_dir())


def _target(data: Path | None) -> LocalBroker | LocalCluster:
    """Whatever --data holds: a cluster (it has cluster.json) or a single broker."""
    if is_cluster(_data(data)):
        return LocalCluster.open(_data(data), cache_dir=PathSettings().cache_dir())
    return _broker(data)


@app.command()
def up(
    port: int = typer.Option(9092, "--port", help=(
        "Client port; the KRaft controller uses PORT+1.  With --brokers N, node i uses PORT+2(i-1) and the port "
        "above it.")),
    brokers: int = typer.Option(1, "--brokers", min=1, help=(
        "Nodes (each a broker and a controller).  3 gives a cluster that survives the loss of one broker: "
        "topics get 3 replicas and min.insync.replicas=2.")),
    data: Path | None = DataOpt,
    heap_mb: int | None = typer.Option(None, "--heap-mb", help="JVM heap per node in MiB (default 512, 384 per "
                                       "node of a cluster)."),
) -> None:
    """Start the broker or cluster (fetching its jars from Maven Central on first use) and wait until it serves.

    Idempotent: with a broker or cluster already running from the same --data folder it just reports it
    (and starts any node of it that is down).

    Example: npusuite kafka up --brokers 3 --port 19092
    """
    if brokers == 1 and not is_cluster(_data(data)):
        broker = _broker(data, port)
        broker.heap_mb = heap_mb or 512
        typer.echo(broker.up().describe())
        return
    cluster = LocalCluster(_data(data), brokers=brokers, port=port, cache_dir=PathSettings().cache_dir(),
                           heap_mb=heap_mb or 384)
    typer.echo(cluster.up().describe())


@app.command()
def status(data: Path | None = DataOpt) -> None:
    """Say whether the broker (or every node of the cluster) is running, where, and where its logs are.
    Exit 1 when it, or any node, is down."""
    st = _target(data).status()
    typer.echo(st.describe())
    raise typer.Exit(0 if st.running else 1)


@app.command()
def down(data: Path | None = DataOpt) -> None:
    """Stop the broker, or every node of the cluster, cleanly (SIGTERM, then SIGKILL after a timeout).
    Stopping a stopped broker is fine."""
    stopped = _target(data).down()
    typer.echo("kafka: stopped" if stopped else "kafka: was not running")


@app.command()
def mirror(
    source: str = typer.Option(..., "--source", metavar="ZONE=HOST:PORT",
                               help="The zone mirrored from, e.g. A=10.0.1.5:9092."),
    target: str = typer.Option(..., "--target", metavar="ZONE=HOST:PORT",
                               help="The zone mirrored to, e.g. B=10.0.2.5:9092."),
    both_ways: bool = typer.Option(False, "--both-ways", help=(
        "Mirror TARGET's topics to SOURCE as well (dual-active: each zone holds a copy of the other's).")),
    topics: str = typer.Option(DEFAULT_TOPICS, "--topics", help=(
        "Java regex of the topics to mirror (default: the scorer's inputs, outputs and state changelogs).")),
    data: Path | None = typer.Option(None, "--data", help=(
        "Folder for mm2.properties and MirrorMaker's log (default: ~/.local/share/npusuite/mirror-SOURCE-TARGET).")),
    heap_mb: int = typer.Option(384, "--heap-mb", help="MirrorMaker's JVM heap in MiB."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write and print mm2.properties; do not start."),
) -> None:
    """Run Kafka's MirrorMaker 2 (dedicated mode) from one zone's cluster to another's, in the foreground.

    Topics arrive prefixed with their zone (A's `transactions` is `A.transactions` in B), only committed
    records are copied (read_committed), and consumer-group offsets are translated.  Stop it with SIGTERM or
    Ctrl-C.  Failover and failback: docs/kafka.md.

    Example: npusuite kafka mirror --source A=127.0.0.1:19092 --target B=127.0.0.1:29092 --both-ways
    """
    from npusuite.platform.kafka.mirror import MirrorPlan, exec_mirror, mirror_command, parse_zone
    from npusuite.platform.kafka.topics import bootstrap_live_brokers, replication_for

    (a, a_boot), (b, b_boot) = parse_zone(source, "--source"), parse_zone(target, "--target")
    if a == b:
        raise UserError(f"--source and --target name the same zone {a!r}")
    rf = min(replication_for(bootstrap_live_brokers(boot))[0] for boot in (a_boot, b_boot))
    plan = MirrorPlan({a: a_boot, b: b_boot}, [(a, b), (b, a)] if both_ways else [(a, b)], topics=topics,
                      replication=rf)
    folder = data or PathSettings().data_dir() / f"mirror-{a}-{b}"
    cmd = mirror_command(folder.expanduser().resolve(), PathSettings().cache_dir(), plan, heap_mb)
    typer.echo(f"mirror: {' and '.join(f'{x}->{y}' for x, y in plan.flows)}; topics {topics!r}; "
               f"config {folder / 'mm2.properties'}; log {folder / 'logs' / 'server.log'}")
    if dry_run:
        typer.echo((folder / "mm2.properties").read_text(), nl=False)
        return
    exec_mirror(cmd)
