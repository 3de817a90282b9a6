"""``npusuite demo``: the one place that wires the whole suite together.

It runs on local, embedded defaults, under one work folder (``.demo/`` by
default):

1. a real Kafka 4.x broker (``npusuite kafka up``), unless ``KAFKA_BOOTSTRAP``
   points at an existing cluster;
2. every further component that is built, each as its own ``npusuite ...``
   process, in the order of :data:`STEP_MODULES`;
3. last, a real Prometheus scraping every ``/metrics`` endpoint the steps
   declared with :meth:`DemoContext.expose_metrics`, with the suite's rules.

Each step is a function ``step(ctx)`` that may run one-off preparation
(``ctx.prepare``: generate data, train a model, only when its output is
missing) and start long-running services (``ctx.start``).  Ctrl-C (or SIGTERM)
stops every process the demo started, in reverse order, and the broker if the
demo started it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import typer

from npusuite.platform.errors import UserError
from npusuite.platform.kafka.broker import LocalBroker
from npusuite.platform.observability.prometheus_server import ScrapeTarget
from npusuite.platform.settings import KafkaSettings, PathSettings

logger = logging.getLogger(__name__)


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    url: str | None
    log: Path


@dataclass
class DemoContext:
    """What a step sees: the work folder, Kafka, and ways to run things."""

    workdir: Path
    bootstrap: str
    admin_token: str
    services: list[Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Values one step publishes for later ones, e.g. ``review_url``, ``review_ingest_token``.
    shared: dict[str, str] = field(default_factory=dict)
    #: ``/metrics`` endpoints the steps expose; the observability step has Prometheus scrape them.
    scrape_targets: list[ScrapeTarget] = field(default_factory=list)

    def expose_metrics(self, job: str, url: str, bearer_token: str | None = None) -> None:
        """Declare ``url`` (``http://host:port/path``) as the ``/metrics`` endpoint of ``job``."""
        parsed = urlsplit(url)
        self.scrape_targets.append(ScrapeTarget(job, parsed.netloc, parsed.path or "/metrics", bearer_token))

    @property
    def model_root(self) -> Path:
        """The one model repository every demo component serves from."""
        return self.workdir / "models"

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "npusuite.platform", *args]

    def prepare(self, what: str, done_when: Path, *args: str) -> None:
        """Run ``npusuite ARGS`` once; skipped when ``done_when`` already exists."""
        if done_when.exists():
            logger.info("%s: already done (%s)", what, done_when)
            return
        logger.info("%s ...", what)
        proc = subprocess.run(self.cli(*args), cwd=self.workdir)
        if proc.returncode != 0:
            raise UserError(f"demo step failed: {what} (npusuite {' '.join(args)})")

    def start(self, name: str, *args: str, url: str | None = None, ready: Callable[[], bool] | None = None,
              ready_timeout_s: float = 120.0) -> Service:
        """Start ``npusuite ARGS`` in the background, logging to WORKDIR/logs/NAME.log."""
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KAFKA_BOOTSTRAP": self.bootstrap, "NPUSUITE_ADMIN_TOKEN": self.admin_token}
        proc = subprocess.Popen(self.cli(*args), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT)
        service = Service(name, proc, url, log)
        self.services.append(service)
        deadline = time.monotonic() + ready_timeout_s
        while ready is not None and not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"demo: {name} did not become ready; see {log}")
            time.sleep(0.5)
        logger.info("started %s%s", name, f" at {url}" if url else "")
        return service

    def stop_all(self) -> None:
        for svc in reversed(self.services):
            if svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        for svc in reversed(self.services):
            try:
                svc.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                svc.proc.kill()


#: Modules that contribute a demo step, in start order.  Each exposes
#: ``step(ctx: DemoContext) -> None``; a module that is not built yet is skipped.
STEP_MODULES = [
    "npusuite.platform.serving.demo",
    "npusuite.review.demo",
    "npusuite.fraud.demo",
    "npusuite.inspection.demo",
    "npusuite.edge.demo",
    "npusuite.platform.observability.demo",
]


def steps() -> list[Callable[[DemoContext], None]]:
    found = []
    for name in STEP_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found.append(importlib.import_module(name).step)
    return found


def _kafka(workdir: Path, port: int) -> tuple[str, LocalBroker | None]:
    existing = KafkaSettings().bootstrap
    if existing:
        return existing, None
    broker = LocalBroker(workdir / "kafka", port=port, cache_dir=PathSettings().cache_dir())
    started = not broker.status().running
    status = broker.up()
    return status.bootstrap, broker if started else None


def app(
    workdir: Path = typer.Option(Path(".demo"), "--workdir", help="Where the demo keeps data, models and logs."),
    kafka_port: int = typer.Option(9092, "--kafka-port", help="Port for the local broker (PORT+1 for its controller)."),
    admin_token: str | None = typer.Option(None, "--admin-token", help=(
        "Bearer token for the demo's management endpoints (default: a random one, "
        "written to WORKDIR/admin-token, readable by you only).")),
    once: bool = typer.Option(False, "--once", help="Start everything, print the summary, stop, and exit."),
) -> None:
    """Start the whole suite locally and keep it running until Ctrl-C."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    token_file = workdir / "admin-token"
    if admin_token is None:
        admin_token = token_file.read_text().strip() if token_file.exists() else secrets.token_urlsafe(24)
    token_file.write_text(admin_token)
    token_file.chmod(0o600)
    bootstrap, own_broker = _kafka(workdir, kafka_port)
    ctx = DemoContext(workdir, bootstrap, admin_token)
    ctx.notes.append(f"admin token  in {token_file}")
    ctx.notes.append(f"kafka        {bootstrap}" + ("  (started by the demo)" if own_broker else ""))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        for step in steps():
            step(ctx)
        typer.echo("\nnpusuite demo is running:")
        for line in ctx.notes:
            typer.echo(f"  {line}")
        for svc in ctx.services:
            typer.echo(f"  {svc.name:<12} {svc.url or '(no HTTP)'}  log {svc.log}")
        typer.echo(f"  work folder  {workdir}\n" + ("" if once else "Ctrl-C stops everything."))
        while not once and not stop["now"]:
            dead = [s.name for s in ctx.services if s.proc.poll() is not None]
            if dead:
                raise UserError(f"demo: {', '.join(dead)} stopped; see {workdir / 'logs'}")
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        ctx.stop_all()
        if own_broker is not None:
            own_broker.down()
        typer.echo("npusuite demo stopped.")
