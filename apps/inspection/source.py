"""Frame sources: a camera index, an RTSP/HTTP URL, a video file or an image folder.

Rules:

* One capture thread per source reads frames through OpenCV and puts them on a
  bounded queue.  When the queue is full the *oldest* frame is dropped (and
  counted in ``frames_dropped``), so a slow consumer always sees the newest
  frames and lag never grows (the RTSP "minutes of lag" failure).
* Every frame is stamped with its capture time (UTC epoch seconds) and a
  running ``seq`` that keeps counting across reconnects.
* A stream that fails (cannot be opened, or a read fails before its end) is
  reopened with exponential backoff (``reconnect_initial_s`` doubling up to
  ``reconnect_max_s``), forever unless ``max_reconnects`` is set.  A video file
  is resumed at the frame after the last one delivered, so a reconnect neither
  repeats nor skips file frames.  A video file that ends normally (all frames
  its header announces were read) ends the source, or restarts it with
  ``loop=True``.  An image folder is read once, in sorted order, and never
  drops frames (the thread waits for room instead: files are not a live feed).
* Every image is decoded through :mod:`npusuite.inspection.images`: a folder
  file that is unreadable or over the size limit is skipped (counted in
  ``frames_refused``, logged, ``last_error`` set); a stream or video whose
  announced frame size is over the limit is refused when it opens (the source
  ends with ``last_error`` set: reconnecting cannot fix it), and a delivered
  frame over the limit is dropped and counted in ``frames_refused``.
* Counters are exposed by :meth:`FrameSource.stats` as a :class:`SourceStats`.

Only this module touches ``cv2.VideoCapture``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from npusuite.inspection.images import IMAGE_SUFFIXES, ImageRefused, check_frame_size, list_images, scan_folder
from npusuite.inspection.records import Frame
from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".mjpg", ".mjpeg", ".webm")


@dataclass(frozen=True)
class SourceConfig:
    """How to read a source.

    ``uri``: ``0`` (camera index), ``rtsp://...``, ``http://...``, a video file or a folder.
    """

    uri: str
    queue_size: int = 8
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 10.0
    max_reconnects: int | None = None
    #: Pace a video file at its own frame rate (as a camera would deliver it); ``False`` = as fast as possible.
    realtime: bool = True
    #: Frame-rate override for pacing (frames/s); ``None`` = the file's own rate.
    fps: float | None = None
    loop: bool = False

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise UserError("source queue_size must be >= 1")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise UserError("need 0 < reconnect_initial_s <= reconnect_max_s")


@dataclass(frozen=True)
class SourceStats:
    """A snapshot of a source's counters."""

    kind: str
    frames_read: int
    frames_dropped: int
    reconnects: int
    connected: bool
    finished: bool
    queue_depth: int
    last_error: str | None
    #: Images or frames refused before reaching the queue (unreadable, or over the size limit).
    frames_refused: int = 0


def source_kind(uri: str) -> str:
    """``camera``, ``stream``, ``video`` or ``folder``; raises :class:`UserError` for a path that is neither."""
    if uri.isdigit():
        return "camera"
    if uri.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp"):
        return "stream"
    path = Path(uri)
    if path.is_dir():
        return "folder"
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"source {uri} is a single image; pass the folder that holds it")
        return "video"
    raise UserError(f"source {uri!r} is not a camera index, a stream URL, a video file or a folder")


class FrameSource:
    """A capture thread feeding a bounded, drop-oldest queue.

    Use as a context manager or call :meth:`start` / :meth:`close`.  Consume
    with :meth:`get` or by iterating (iteration ends when the source finishes).
    Raises :class:`UserError` from the constructor for a source that does not
    exist (a missing file or folder, an empty folder).
    """

    def __init__(self, config: SourceConfig, clock=time.time) -> None:
        self.config = config
        self.kind = source_kind(config.uri)
        self._clock = clock
        self._images = list_images(Path(config.uri)) if self.kind == "folder" else []
        if self.kind == "folder" and not self._images:
            raise UserError(f"source folder {config.uri} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self._queue: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats = SourceStats(self.kind, 0, 0, 0, False, False, 0, None)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FrameSource:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"capture:{self.config.uri}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> FrameSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consumer side -----------------------------------------------------------------------------
    def stats(self) -> SourceStats:
        with self._cond:
            return replace(self._stats, queue_depth=len(self._queue))

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """The oldest queued frame; ``None`` on timeout or when the source has finished and the queue is empty."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._queue:
                if self._stats.finished or self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else 0.5)
            frame = self._queue.popleft()
            self._cond.notify_all()
            return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.get(timeout_s=0.5)
            if frame is not None:
                yield frame
            elif self._stats.finished or self._stop.is_set():
                return

    # -- producer side -----------------------------------------------------------------------------
    def _update(self, **changes: object) -> None:
        with self._cond:
            self._stats = replace(self._stats, **changes)
            self._cond.notify_all()

    def _put(self, image: np.ndarray, name: str | None = None) -> None:
        with self._cond:
            if self.kind == "folder":  # files are not a live feed: wait for room rather than drop
                while len(self._queue) >= self.config.queue_size and not self._stop.is_set():
                    self._cond.wait(0.2)
            seq = self._stats.frames_read
            frame = Frame(image=image, timestamp=self._clock(), source=self.config.uri, seq=seq, name=name)
            dropped = self._stats.frames_dropped
            while len(self._queue) >= self.config.queue_size:
                self._queue.popleft()
                dropped += 1
            self._queue.append(frame)
            self._stats = replace(self._stats, frames_read=seq + 1, frames_dropped=dropped)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            if self.kind == "folder":
                self._run_folder()
            else:
                self._run_capture()
        except Exception as exc:  # a bug must not leave consumers waiting forever
            logger.exception("capture thread for %s failed", self.config.uri)
            self._update(last_error=f"{type(exc).__name__}: {exc}")
        finally:
            self._update(finished=True, connected=False)

    def _run_folder(self) -> None:
        self._update(connected=True)
        for item in scan_folder(Path(self.config.uri), self._images):
            if self._stop.is_set():
                return
            if item.image is None:
                self._update(frames_refused=self._stats.frames_refused + 1, last_error=f"{item.name}: {item.reason}")
                continue
            self._put(item.image, name=item.name)

    def _open(self, position: int):
        import cv2

        target: int | str = int(self.config.uri) if self.kind == "camera" else self.config.uri
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            return None
        # The size the stream announces, before a frame of it is decoded (some backends say 0 until the first
        # frame; those are checked frame by frame in _run_capture).
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width > 0 and height > 0:
            try:
                check_frame_size(width, height, f"source {self.config.uri} frame")
            except ImageRefused:
                cap.release()
                raise
        if self.kind == "video" and position > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, position)
        return cap

    def _run_capture(self) -> None:
        import cv2

        backoff = self.config.reconnect_initial_s
        position = 0  # next file frame to read (video files only)
        failures = 0  # consecutive failed connections/reads since the last good frame
        ever_connected = False
        while not self._stop.is_set():
            try:
                cap = self._open(position)
            except ImageRefused as exc:  # a configuration problem: reconnecting would only repeat it
                logger.error("source %s refused: %s", self.config.uri, exc)
                self._update(last_error=str(exc))
                return
            if cap is None:
                error = f"cannot open {self.config.uri}"
            else:
                if ever_connected:
                    self._update(reconnects=self._stats.reconnects + 1)
                    logger.info("source %s reconnected (reconnect %d)", self.config.uri, self._stats.reconnects)
                ever_connected = True
                self._update(connected=True, last_error=None)
                total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.kind == "video" else 0
                fps = self.config.fps or cap.get(cv2.CAP_PROP_FPS) or 25.0
                period_s = 1.0 / fps if (self.kind == "video" and self.config.realtime) else 0.0
                next_t = time.monotonic()
                error = None
                while not self._stop.is_set():
                    ok, image = cap.read()
                    if not ok or image is None:
                        if self.kind == "video" and total > 0 and position >= total:
                            error = "end"
                        else:
                            error = f"read failed at frame {position}"
                        break
                    position += 1
                    failures = 0
                    backoff = self.config.reconnect_initial_s
                    try:  # a stream may change resolution after it opened
                        check_frame_size(image.shape[1], image.shape[0], f"frame {position - 1}")
                    except ImageRefused as exc:
                        self._update(frames_refused=self._stats.frames_refused + 1, last_error=str(exc))
                        continue
                    if image.ndim == 2:
                        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                    self._put(np.ascontiguousarray(image[:, :, :3]))
                    if period_s:
                        next_t += period_s
                        delay = next_t - time.monotonic()
                        if delay > 0:
                            self._stop.wait(delay)
                        else:
                            next_t = time.monotonic()
                cap.release()
                self._update(connected=False)
                if error == "end":
                    if not self.config.loop:
                        logger.info("source %s ended after %d frames", self.config.uri, position)
                        return
                    position = 0
                    continue
            if self._stop.is_set():
                return
            failures += 1
            if self.config.max_reconnects is not None and failures > self.config.max_reconnects:
                logger.error("source %s: giving up after %d failed attempts (%s)", self.config.uri, failures, error)
                self._update(last_error=error)
                return
            logger.warning("source %s: %s; reconnecting in %.1f s", self.config.uri, error, backoff)
            self._update(last_error=error)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.config.reconnect_max_s)
