"""Is the Kafka bootstrap reachable at all?  One fast check before a command starts its clients.

Rules:
- :func:`probe_bootstrap` opens a plain TCP connection to each ``host:port``
  of the bootstrap list, all within ``timeout_s`` in total; the first one that
  accepts is enough (a Kafka client needs one bootstrap broker to learn the
  rest).  Nothing is sent: the Kafka clients do the protocol.
- When none accepts, it raises :class:`UserError` (one line, exit 2) naming
  every address tried and what went wrong, and saying how to get a broker:
  ``npusuite kafka up`` or ``KAFKA_BOOTSTRAP``.  Without this check a Kafka
  client retries for its whole request timeout (tens of seconds) and then
  reports only ``KafkaTimeoutError``.
- A malformed bootstrap string is a ``UserError`` too.
"""

from __future__ import annotations

import logging
import socket
import time

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

#: Default budget: long enough for a broker on a loaded machine, short enough to fail well inside 10 s.
DEFAULT_TIMEOUT_S = 3.0
_HINT = "start one with `npusuite kafka up`, or point KAFKA_BOOTSTRAP (or --bootstrap) at a running broker"


def parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """``"h1:9092,h2:9093"`` -> ``[("h1", 9092), ("h2", 9093)]``; brackets allowed around IPv6 hosts."""
    out = []
    for item in (part.strip() for part in bootstrap.split(",")):
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not item or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"Kafka bootstrap {bootstrap!r}: expected HOST:PORT[,HOST:PORT...]")
        out.append((host, int(port)))
    return out


def probe_bootstrap(bootstrap: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Return once one bootstrap address accepts a TCP connection; raise UserError when none does in time."""
    addresses = parse_bootstrap(bootstrap)
    deadline = time.monotonic() + timeout_s
    reasons = []
    for i, (host, port) in enumerate(addresses):
        # share what is left of the budget among the addresses still to try
        budget = max(0.05, (deadline - time.monotonic()) / (len(addresses) - i))
        try:
            with socket.create_connection((host, port), timeout=budget):
                logger.debug("Kafka bootstrap %s:%d accepts connections", host, port)
                return
        except OSError as exc:
            reasons.append(f"{host}:{port} ({_reason(exc)})")
    raise UserError(f"cannot reach the Kafka broker at {', '.join(reasons)} within {timeout_s:g} s; {_HINT}")


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or type(exc).__name__
