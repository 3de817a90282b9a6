"""Start-up order of the HTTP server: take the port first, announce only once it answers.

Rules:
- :func:`bind_listener` binds and listens on ``host:port`` before any model
  is loaded, so a taken port (or an address this host does not have) fails
  the command at once with a one-line ``UserError`` naming the address,
  instead of after minutes of loading.  Connections that arrive while models
  load wait in the listen backlog.
- :class:`AnnouncingServer` is uvicorn's server on that socket; it logs
  ``serving ... on http://HOST:PORT`` only after uvicorn has started
  accepting, so the line is true when it appears (port 0 reports the port
  the kernel chose).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable

import uvicorn

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port``.  Raises UserError naming the address when that fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: unknown address ({exc.strerror})") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses a port in TIME_WAIT
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        why = ("the port is in use (another server? choose another --port)" if exc.errno == errno.EADDRINUSE
               else exc.strerror or str(exc))
        raise UserError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that calls ``announce(url)`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[str], None]):
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            self.announce(f"http://{host}:{port}")
