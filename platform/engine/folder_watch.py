"""Wake a thread when files in one folder change: inotify first, a slow poll as the fallback.

Followers of repository aliases (:meth:`ModelEngine.follow`, the manager's
repository watch) use this instead of polling every second.

Rules:
- The folder is watched, not a file (``accept`` filters by base name): the repository replaces ``aliases.json``
  atomically (temporary file + ``os.replace``), so the file's inode changes
  and a watch on the file itself would go blind after the first promote.
- The watch is armed when :class:`FolderWatch` is constructed (before the
  caller reads the state it compares against), so a change made between
  reading that state and waiting is not missed.
- :meth:`wait` returns ``True`` soon after a change of an accepted name
  (grouped over at most ``debounce_ms``), ``False`` after ``fallback_poll_s``
  without one, and ``None`` once ``stop`` is set.  Callers re-read the state
  on every return, so a spurious wake-up costs one read and a missed event is
  caught by the next fallback poll.
- Where inotify is unavailable (no watch descriptors left, an exotic file
  system, the folder missing at start) it degrades to the fallback poll and
  says so once in the log; it never raises.  ``use_inotify=False`` forces the
  poll (benchmarks, tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


class FolderWatch:
    """A watch of ``folder`` (its sub-folders too with ``recursive``; see module rules).  One thread waits."""

    def __init__(self, folder: Path, stop: threading.Event, accept: Callable[[str], bool] = lambda _name: True,
                 fallback_poll_s: float = 30.0, use_inotify: bool = True, recursive: bool = False,
                 debounce_ms: int = 50, step_ms: int = 5) -> None:
        self.folder = Path(folder)
        self.stop = stop
        self.accept = accept
        self.fallback_poll_s = fallback_poll_s
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self._notify = None
        if use_inotify:
            try:
                from watchfiles._rust_notify import RustNotify  # the documented "Rust backend" of watchfiles

                # (paths, debug, force_polling, poll_delay_ms, recursive, ignore_permission_denied)
                self._notify = RustNotify([str(self.folder)], False, False, 300, recursive, True)
            except (ImportError, OSError, RuntimeError) as exc:
                logger.warning("cannot watch %s with inotify (%s); polling every %.0f s instead",
                               self.folder, exc, fallback_poll_s)

    @property
    def notifying(self) -> bool:
        """True while changes wake the caller (inotify), False when only the fallback poll does."""
        return self._notify is not None

    def wait(self) -> bool | None:
        """Block until a change (True), the fallback poll interval (False) or ``stop`` (None)."""
        if self.stop.is_set():
            return None
        if self._notify is None:
            return None if self.stop.wait(self.fallback_poll_s) else False
        try:
            raw = self._notify.watch(self.debounce_ms, self.step_ms, int(self.fallback_poll_s * 1000), self.stop)
        except RuntimeError as exc:  # the watcher thread died (e.g. the folder was removed)
            logger.warning("watch of %s failed (%s); polling every %.0f s instead", self.folder, exc,
                           self.fallback_poll_s)
            self.close()
            return False
        if raw == "stop":
            return None
        if raw in ("timeout", "signal"):
            return False
        return any(self.accept(Path(path).name) for _change, path in raw)

    def close(self) -> None:
        notify, self._notify = self._notify, None
        if notify is not None:
            notify.close()
