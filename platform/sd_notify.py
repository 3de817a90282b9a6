"""systemd's notify protocol (sd_notify), in plain socket code.

A service started with ``Type=notify`` tells systemd it is up by sending ``READY=1``; with
``WatchdogSec=`` it must then send ``WATCHDOG=1`` more often than that interval, or systemd
kills and (with ``Restart=``) restarts it.  Rules:

- messages go as one datagram to the AF_UNIX socket systemd names in ``NOTIFY_SOCKET``; a name
  starting with ``@`` is in the abstract namespace (``@`` becomes a NUL byte);
- with no ``NOTIFY_SOCKET`` (not under systemd) every call is a no-op that returns False, so
  callers never branch on how they were started;
- the watchdog is on when ``WATCHDOG_USEC`` is set and ``WATCHDOG_PID`` is unset or names this
  process; :meth:`SdNotify.watchdog_interval_s` is half the timeout, the ping period systemd
  recommends;
- a failed send is logged at debug level and returns False: losing a notification must never
  stop the service (a missed watchdog ping is what systemd is there to notice);
- the environment is read only through :class:`npusuite.platform.settings.SystemdSettings`.

Where the calls go: ``ready()`` once the service accepts work (listening, models loaded),
``watchdog()`` from the loop whose progress proves the process healthy (not from a side thread
that would keep pinging while the main loop is stuck), ``stopping()`` on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from npusuite.platform.settings import SystemdSettings

logger = logging.getLogger(__name__)


class SdNotify:
    """A handle on systemd's notify socket (or on nothing, outside systemd)."""

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None,
                 watchdog_pid: int | None = None) -> None:
        self._address = _address(socket_path)
        mine = watchdog_pid is None or watchdog_pid == os.getpid()
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 and mine else None

    @classmethod
    def from_settings(cls, settings: SystemdSettings | None = None) -> SdNotify:
        s = settings or SystemdSettings()
        return cls(s.notify_socket, s.watchdog_usec, s.watchdog_pid)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """How often to call :meth:`watchdog` (half of ``WatchdogSec=``); None: no watchdog."""
        return None if self._watchdog_usec is None or not self.enabled else self._watchdog_usec / 2e6

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram.  Returns whether it was sent."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            logger.debug("sd_notify %r failed: %s", assignments, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """The service is up and accepting work."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """The service is alive; a no-op without a watchdog."""
        return self.watchdog_interval_s() is not None and self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status that `systemctl status` shows."""
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        """The service is shutting down cleanly."""
        return self.notify("STOPPING=1")

    async def watchdog_loop(self) -> None:
        """Ping the watchdog forever from the running event loop (returns at once without one).

        Run it as a task of the loop that serves requests: when that loop stalls, the pings stop
        and systemd restarts the service.
        """
        interval = self.watchdog_interval_s()
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)


def _address(socket_path: str | None) -> str | bytes | None:
    if not socket_path:
        return None
    if socket_path.startswith("@"):
        return b"\0" + socket_path[1:].encode()
    if not socket_path.startswith("/"):
        logger.debug("ignoring NOTIFY_SOCKET %r: neither a path nor an abstract name", socket_path)
        return None
    return socket_path
