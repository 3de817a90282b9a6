"""``npusuite kafka up|status|down``: a local single-node Kafka 4.x broker.

To use an existing cluster instead, set ``KAFKA_BOOTSTRAP=host:port`` and skip
these commands; every component reads it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from npusuite.platform.kafka.broker import LocalBroker
from npusuite.platform.settings import PathSettings

app = typer.Typer(no_args_is_help=True, help=__doc__)

DataOpt = typer.Option(None, "--data", help="Broker data folder (default: ~/.local/share/npusuite/kafka).")


def _broker(data: Path | None, port: int = 9092) -> LocalBroker:
    paths = PathSettings()
    return LocalBroker(data or paths.data_dir() / "kafka", port=port, cache_dir=paths.cache_dir())


@app.command()
def up(
    port: int = typer.Option(9092, "--port", help="Client port; the KRaft controller uses PORT+1."),
    data: Path | None = DataOpt,
    heap_mb: int = typer.Option(512, "--heap-mb", help="Broker JVM heap in MiB."),
) -> None:
    """Start the broker (fetching its jars from Maven Central on first use) and wait until it serves.

    Idempotent: with a broker already running from the same --data folder it just reports it.
    """
    broker = _broker(data, port)
    broker.heap_mb = heap_mb
    typer.echo(broker.up().describe())


@app.command()
def status(data: Path | None = DataOpt) -> None:
    """Say whether the broker is running, where, and where its log is.  Exit 1 when it is down."""
    st = _broker(data).status()
    typer.echo(st.describe())
    raise typer.Exit(0 if st.running else 1)


@app.command()
def down(data: Path | None = DataOpt) -> None:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after 30 s).  Stopping a stopped broker is fine."""
    stopped = _broker(data).down()
    typer.echo("kafka: stopped" if stopped else "kafka: was not running")
